/** Shared pieces of the ledger CLI tests: run the CLI in-process and capture what it prints. */
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
