// Types of report.mjs for the TypeScript test that runs it (test/chaos-report.test.ts).
export interface Check { name: string, value: number | string | boolean, goal?: string, pass: boolean }
export interface DrillResult { id: string, seconds: number, checks: Check[], error?: string }
export function progress (message: string): void
export function endProgress (): void
export function check (
  name: string, value: number | string | boolean, goal?: { op: '=' | '<=' | '>=', want: number | string | boolean }
): Check
export function summaryTable (drills: DrillResult[]): string
export function drillPassed (drill: DrillResult): boolean
export function writeResults (path: string, run: unknown): Promise<void>
