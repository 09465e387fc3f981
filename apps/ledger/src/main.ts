/** Entry point of the finance CLI; see ledger.cli.ts for the commands. */
import { runLedger } from './ledger.cli.js';

process.exitCode = await runLedger(
  process.argv.slice(2),
  (text) => process.stdout.write(text),
  (text) => process.stderr.write(text),
);
