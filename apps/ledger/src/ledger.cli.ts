/**
 * The finance CLI's commands and options: `npm run ledger -- <command>`.
 *
 *   replay  [--until <ISO time>] [--account <id>]   balances from position 0, diffed against the live read model
 *   verify                                          I1-I6 and the log's continuity, each violation with stream and revision
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
import { defaultProjections } from '#projections';
import { exportCommand } from './export.command.js';
import { openLedgerContext } from './ledger-context.js';
import { rebuildCommand } from './rebuild.command.js';
import { NotFoundError, UsageError } from './errors.js';
import { replayCommand } from './replay.command.js';
import { verifyCommand } from './verify.command.js';

const USAGE = `usage: ledger <command> [options]
  replay  [--until <ISO time>] [--account <id>]
  verify
  export  --account <id> --month YYYY-MM [--format csv|json]
  rebuild <${defaultProjections()
    .map((p) => p.name)
    .join('|')}>
options: --db <file>            the SQLite log (embedded), or the read-model file with ESDB_URL
         --read-models <file>   embedded: the read-model file (default: read-models.db beside --db)
`;

const SOURCE_OPTIONS = ['db', 'read-models', 'help'];
const COMMANDS: Record<string, { options: string[]; arguments: number }> = {
  replay: { options: ['until', 'account'], arguments: 0 },
  verify: { options: [], arguments: 0 },
  export: { options: ['account', 'month', 'format'], arguments: 0 },
  rebuild: { options: [], arguments: 1 },
};

function messageOf(error: unknown): string {
  const e = error as { message?: unknown; code?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(error);
  return typeof e?.code === 'string' && !message.includes(e.code) ? `${message} (${e.code})` : message;
}

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
  const takes = COMMANDS[command];
  if (takes === undefined) {
    err(`unknown command ${command}\n${USAGE}`);
    return 2;
  }
  // An option or argument a command does not take would be silently ignored: refuse it instead.
  const stray = Object.keys(values).filter((o) => !SOURCE_OPTIONS.includes(o) && !takes.options.includes(o));
  if (stray.length > 0 || rest.length > takes.arguments) {
    const what = stray.length > 0 ? `--${stray[0]}` : rest[takes.arguments];
    err(`${command} does not take ${what}\n${USAGE}`);
    return 2;
  }
  const expirySeconds = Number(env.NEXO_EXPIRY_SECONDS ?? 600);
  if (!Number.isFinite(expirySeconds) || expirySeconds <= 0) {
    err(`NEXO_EXPIRY_SECONDS must be a positive number of seconds, not ${env.NEXO_EXPIRY_SECONDS}\n`);
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
        return (await verifyCommand(ctx, { expiryMs: expirySeconds * 1000 })).violations.length > 0 ? 1 : 0;
      case 'export':
        await exportCommand(ctx, { account: values.account, month: values.month, format: values.format });
        return 0;
      default: {
        await rebuildCommand(ctx, rest[0], { expiryMs: expirySeconds * 1000 });
        return 0;
      }
    }
  } catch (error) {
    if (error instanceof UsageError) err(`${error.message}\n${USAGE}`);
    else if (error instanceof NotFoundError) err(`${error.message}\n`);
    // One line, as for every other failure: a finance user needs what failed, not where in the code (NEXO_DEBUG=1 shows the stack).
    else err(`ledger ${command} could not run: ${env.NEXO_DEBUG === '1' ? ((error as Error).stack ?? String(error)) : messageOf(error)}\n`);
    return 2;
  } finally {
    await ctx.close();
  }
}
