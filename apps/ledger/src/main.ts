/** Entry point of the finance CLI; see ledger.cli.ts for the commands. */
import { runLedger } from './ledger.cli.js';

// `rebuild` writes read models: the files it creates are its user's alone, as the services' are.
process.umask(0o077);

// `ledger export … | head` closes the pipe early; that is the reader's choice, not a failure.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

process.exitCode = await runLedger(
  process.argv.slice(2),
  (text) => process.stdout.write(text),
  (text) => process.stderr.write(text),
);
