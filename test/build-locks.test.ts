// CI starts `deploy/local/setup.sh prebuild` in the background, so a step can ask for a program while the prebuild
// is building it. Each build holds a lock; a second caller must wait for it, then find the program built, and never
// build beside it. The lock is held here by flock(1), as the prebuild's shell holds it.
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ROOT, type Teardown, waitFor } from '@pagestream/test-kit'

interface Run { child: ChildProcess, stdout: string, stderr: string, exit: Promise<number | null> }

function start (command: string, args: string[], env: NodeJS.ProcessEnv): Run {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const run: Run = { child, stdout: '', stderr: '', exit: new Promise((resolve) => child.once('exit', resolve)) }
  child.stdout?.on('data', (chunk: Buffer) => { run.stdout += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { run.stderr += chunk.toString() })
  return run
}

/** Holds the lock file until released; resolves once flock(1) has it (it then runs `cat`, which waits on stdin). */
async function holdLock (file: string): Promise<() => Promise<void>> {
  const holder = spawn('flock', [file, 'sh', '-c', 'echo held; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] })
  let out = ''
  holder.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  await waitFor(`flock to take ${file}`, () => out.includes('held'), 10_000)
  const exited = new Promise((resolve) => holder.once('exit', resolve))
  return async () => { holder.stdin.end(); await exited }
}

function cacheFolder (t: Teardown): string {
  const cache = mkdtempSync(join(tmpdir(), 'pagestream-locks-'))
  t.teardown(() => rmSync(cache, { recursive: true, force: true }))
  return cache
}

/** An executable where a built program would be, so the caller has nothing to build once it has the lock. */
function fakeProgram (path: string): void {
  mkdirSync(join(path, '..'), { recursive: true })
  writeFileSync(path, '#!/bin/sh\n')
  chmodSync(path, 0o755)
}

async function stillRunning (run: Run, ms: number): Promise<boolean> {
  const timer = new Promise((resolve) => setTimeout(resolve, ms, false))
  return await Promise.race([run.exit.then(() => true), timer]) === false
}

t.test('setup.sh waits for a build of the same program in progress, then finds it built', async (t) => {
  const cache = cacheFolder(t)
  fakeProgram(join(cache, 'bin', 'helm-v4.3.1'))
  const release = await holdLock(join(cache, '.helm.lock'))
  const run = start(join(ROOT, 'deploy/local/setup.sh'), ['helm'], { PAGESTREAM_CACHE: cache, HELM_VERSION: 'v4.3.1' })
  t.teardown(() => { run.child.kill('SIGKILL') })

  await waitFor('setup.sh to say it waits', () => run.stderr.includes('waiting for another build of helm to finish'))
  t.ok(await stillRunning(run, 500), 'it does not go on while the lock is held')
  await release()
  t.equal(await run.exit, 0, run.stderr)
  t.equal(run.stdout.trim(), join(cache, 'bin', 'helm-v4.3.1'), 'the program the other build made')
  t.notMatch(run.stderr, /installing helm/, 'it built nothing itself')
})

t.test('an unheld lock costs nothing: setup.sh answers at once and says nothing about waiting', async (t) => {
  const cache = cacheFolder(t)
  fakeProgram(join(cache, 'otelcol-v0.165.0', 'otelcol'))
  const run = start(join(ROOT, 'deploy/local/setup.sh'), ['otelcol'], { PAGESTREAM_CACHE: cache })
  t.equal(await run.exit, 0, run.stderr)
  t.equal(run.stdout.trim(), join(cache, 'otelcol-v0.165.0', 'otelcol'))
  t.equal(run.stderr, '')
})

t.test("the cluster's build.sh waits for a build in progress before it links the programs", async (t) => {
  const cache = cacheFolder(t)
  mkdirSync(join(cache, 'k8s'), { recursive: true })
  const release = await holdLock(join(cache, 'k8s', '.build.lock'))
  const run = start(join(ROOT, 'deploy/local/k8s/build.sh'), ['bin'], { PAGESTREAM_CACHE: cache })
  t.teardown(() => { run.child.kill('SIGKILL') })

  await waitFor('build.sh to say it waits', () => run.stderr.includes('waiting for another build to finish'))
  t.ok(await stillRunning(run, 500), 'it does not go on while the lock is held')
  await release()
  t.equal(await run.exit, 0, run.stderr)
  t.equal(run.stdout.trim(), join(cache, 'k8s', 'bin'))
})
