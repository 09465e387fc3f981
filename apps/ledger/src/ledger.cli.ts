/**
 * The finance CLI's commands and options: `npm run ledger -- <command>`.
 *
 *   replay  [--until <ISO time>] [--account <id>]   balances from position 0, diffed against the live read model
 *   verify                                          I1-I5 over the whole log, each violation with stream and revision
 *   export  --account <id> --month YYYY-MM [--format csv|json]
 *   rebuild <projection>                            rebuild one read model side by side and swap it in
 *
 * Sources: `--db <file>` (default $NEXO_DB_FILE or $NEXO_DATA_DIR/nexo.db), read-only, and
 * `--read-models <file>` (default $NEXO_READ_MODELS_FILE or read-models.db beside --db);
 * with ESDB_URL the log comes from EventStoreDB and --db names the local read-model file
 * (default $NEXO_DATA_DIR/read-models.db). Exit codes: 0 clean, 1 differences or
 * violations found, 2 the command could not run.
 */
import { parseArgs } from 'node:util';
import { exportCommand } from './export.command.js';
import { openLedgerContext } from './ledger-context.js';
import { rebuildCommand } from './rebuild.command.js';
import { replayCommand, UsageError } from './replay.command.js';
import { verifyCommand } from './verify.command.js';

const USAGE = `usage: ledger <command> [options]
  replay  [--until <ISO time>] [--account <id>]
  verify
  export  --account <id> --month YYYY-MM [--format csv|json]
  rebuild <money|otps|directory>
options: --db <file>            the SQLite log (embedded), or the read-model file with ESDB_URL
         --read-models <file>   embedded: the read-model file (default: read-models.db beside --db)
`;

export async function runLedger(argv: string[], out: (text: string) => void, err: (text: string) => void, env = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        db: { type: 'string' },
        'read-models': { type: 'string' },
        until: { type: 'string' },
        account: { type: 'string' },
        month: { type: 'string' },
        format: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    err(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help === true || command === undefined) {
    (command === undefined && values.help !== true ? err : out)(USAGE);
    return command === undefined && values.help !== true ? 2 : 0;
  }
  if (!['replay', 'verify', 'export', 'rebuild'].includes(command)) {
    err(`unknown command ${command}\n${USAGE}`);
    return 2;
  }
  let ctx;
  try {
    ctx = await openLedgerContext({ db: values.db, readModels: values['read-models'], writable: command === 'rebuild', env }, out);
  } catch (error) {
    err(`cannot open the sources: ${(error as Error).message}\n`);
    return 2;
  }
  try {
    switch (command) {
      case 'replay': {
        const r = await replayCommand(ctx, { until: values.until, account: values.account });
        return !r.compared ? 2 : r.differences > 0 ? 1 : 0;
      }
      case 'verify':
        return (await verifyCommand(ctx)).violations.length > 0 ? 1 : 0;
      case 'export':
        await exportCommand(ctx, { account: values.account, month: values.month, format: values.format });
        return 0;
      default: {
        const seconds = Number(env.NEXO_EXPIRY_SECONDS ?? 600);
        await rebuildCommand(ctx, rest[0], { expiryMs: seconds * 1000 });
        return 0;
      }
    }
  } catch (error) {
    err(error instanceof UsageError ? `${error.message}\n${USAGE}` : `ledger ${command} failed: ${(error as Error).stack ?? String(error)}\n`);
    return 2;
  } finally {
    await ctx.close();
  }
}
