import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Page, chromium } from 'playwright-core'
import type { Teardown } from './teardown.js'

// without the networking flags Debian's Chromium stalls on a closed network
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync']

/** A page of Debian's headless Chromium with a fresh profile, both removed at teardown. */
export async function chromiumPage (t: Teardown, viewport: { width: number, height: number }): Promise<Page> {
  const profile = mkdtempSync(join(tmpdir(), 'pagestream-chromium-'))
  t.teardown(() => rmSync(profile, { recursive: true, force: true }))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, viewport,
  })
  t.teardown(() => context.close())
  return context.pages()[0] ?? await context.newPage()
}
