/** The compiled API as a child process (`node dist/apps/api/src/main.js`), for tests that signal or kill it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../../libs/eventstore/src/testing/ensure-built.js';

export { freePort } from '#testing';

/** `stdout: 'pipe'` for a test that reads its log lines (at `LOG_LEVEL` in `env`; `warn` otherwise). */
export function startApiProcess(dir: string, port: number, env: Record<string, string> = {}, options: { stdout?: 'pipe' } = {}): ChildProcess {
  return spawn(process.execPath, [join(repoRoot, 'dist/apps/api/src/main.js')], {
    env: { ...process.env, NEXO_DATA_DIR: dir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', NEXO_SIGNUPS_PER_HOUR: '100000', ...env },
    stdio: ['ignore', options.stdout ?? 'ignore', 'inherit'],
  });
}

/** Resolves once `/health/ready` answers 200 (the store answers and projections caught up). */
export async function ready(base: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${base}/health/ready`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server did not start');
}

/** Stops a child still running (SIGTERM) and waits for its exit. */
export async function stopApiProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}
