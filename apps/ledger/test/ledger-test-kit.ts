/** Shared pieces of the ledger CLI tests: run the CLI in-process and capture what it prints, or run the built one as finance does. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../../libs/eventstore/src/testing/ensure-built.js';
import { runLedger } from '../src/ledger.cli.js';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

export async function ledger(...argv: string[]): Promise<CliRun> {
  let out = '';
  let err = '';
  const code = await runLedger(
    argv,
    (t) => (out += t),
    (t) => (err += t),
    { NEXO_DATA_DIR: '/nonexistent' },
  );
  return { code, out, err };
}

/** The built CLI as finance runs it, in a child process: `node dist/apps/ledger/src/main.js <args>` (build first: `ensureBuilt`). */
export async function ledgerProcess(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    // Without the test runner's node options (ESM VM modules): the CLI runs as a plain process.
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [join(repoRoot, 'dist/apps/ledger/src/main.js'), ...args], { cwd: repoRoot, env: { ...process.env, NODE_OPTIONS: '' } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
