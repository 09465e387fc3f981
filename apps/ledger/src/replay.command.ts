/**
 * `ledger replay [--until <ISO time>] [--account <id>]`: rebuilds balances
 * from position 0 into fresh in-memory tables with the money projection,
 * prints them and diffs them against the live read model. Exit 1 on any
 * difference.
 *
 * The diff compares like with like: the live tables are read in one snapshot
 * together with their checkpoint, and the replay stops at that checkpoint.
 * With --until the replay stops at the last event recorded at or before that
 * time, and the balances are compared with the live ledger statement's
 * balance after that position (statements carry no test credits or pending,
 * so only the balance is diffed then).
 */
import Database from 'better-sqlite3';
import {
  type AccountBalance,
  createTables,
  ledgerBalanceAt,
  listBalances,
  moneyProjection,
  pageReader,
  readCheckpoint,
} from '#projections';
import { UsageError } from './errors.js';
import { table, usd } from './format.js';
import { type LedgerContext, requireAccount } from './ledger-context.js';

export interface ReplayOptions {
  until?: string;
  account?: string;
  batchSize?: number;
}

export interface ReplayResult {
  position: bigint;
  events: number;
  seconds: number;
  balances: AccountBalance[];
  differences: number;
  /** False when the file has no live balances read model to compare with. */
  compared: boolean;
}

interface LiveSnapshot {
  position: bigint;
  balances: Map<string, AccountBalance>;
}

function liveSnapshot(ctx: LedgerContext, account: string | undefined): LiveSnapshot | undefined {
  return ctx.db.transaction(() => {
    const cp = readCheckpoint(ctx.db, moneyProjection.name);
    if (cp === undefined || cp.version !== moneyProjection.version) return undefined;
    const all = listBalances(ctx.db).filter((b) => account === undefined || b.accountId === account);
    return { position: cp.position, balances: new Map(all.map((b) => [b.accountId, b])) };
  })();
}

/** Folds the log into an in-memory `balances` table, up to `limit` and (if given) events recorded by `untilMs`. */
export async function replayBalances(
  ctx: LedgerContext,
  options: { limit: bigint; untilMs?: number; account?: string; batchSize?: number },
): Promise<{ position: bigint; events: number; balances: AccountBalance[] }> {
  const mem = new Database(':memory:');
  try {
    createTables(mem, moneyProjection);
    const writer = moneyProjection.writer(mem, '');
    const handles = new Set(moneyProjection.handles);
    const read = pageReader(ctx.store);
    const stream = options.account === undefined ? undefined : `account-${options.account}`;
    const batch = options.batchSize ?? 5_000;
    let position = 0n;
    let events = 0;
    let done = false;
    const applyPage = mem.transaction((page: Awaited<ReturnType<typeof read>>) => {
      for (const e of page) {
        if (e.position > options.limit || (options.untilMs !== undefined && Date.parse(e.created) > options.untilMs)) {
          done = true;
          break;
        }
        position = e.position;
        events++;
        if (handles.has(e.type) && (stream === undefined || e.streamId === stream)) writer.apply(e);
      }
      writer.flush();
    });
    while (!done && position < options.limit) {
      const page = await read(position, batch);
      if (page.length === 0) break;
      applyPage(page);
    }
    return { position, events, balances: listBalances(mem) };
  } finally {
    mem.close();
  }
}

/** A date, or a date and time with an optional zone: what `--until` takes (Date.parse alone reads `1` as 2001). */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

export async function replayCommand(ctx: LedgerContext, options: ReplayOptions): Promise<ReplayResult> {
  const untilMs = options.until === undefined ? undefined : Date.parse(options.until);
  if (options.until !== undefined && (!ISO_TIME.test(options.until) || Number.isNaN(untilMs))) {
    throw new UsageError(`--until is not an ISO time (2026-11-30 or 2026-11-30T23:59:59Z): ${options.until}`);
  }
  if (options.account !== undefined) await requireAccount(ctx, options.account);
  const started = performance.now();
  const live = liveSnapshot(ctx, options.account);
  const limit = live?.position ?? (await ctx.store.headPosition());
  const replayed = await replayBalances(ctx, { limit, untilMs, account: options.account, batchSize: options.batchSize });
  const seconds = (performance.now() - started) / 1000;

  const asOf = options.until === undefined ? '' : ` recorded by ${new Date(untilMs as number).toISOString()}`;
  ctx.out(`replay of ${ctx.source}: ${replayed.events} events up to position ${replayed.position}${asOf}, in ${seconds.toFixed(2)} s\n`);
  if (live === undefined) {
    ctx.out('no live balances read model in this file: nothing to diff against\n');
  } else if (untilMs === undefined) {
    ctx.out(`diffed against the live balances read model at its checkpoint ${live.position}\n`);
  } else {
    ctx.out(`diffed against the live ledger statements' balance after position ${replayed.position}\n`);
  }

  const rows: string[][] = [];
  let differences = 0;
  const replayedById = new Map(replayed.balances.map((b) => [b.accountId, b]));
  const ids = new Set([...replayedById.keys(), ...(untilMs === undefined && live !== undefined ? live.balances.keys() : [])]);
  for (const id of [...ids].sort()) {
    const r = replayedById.get(id);
    const shown = [id, r ? usd(r.balance) : '-', r ? String(r.testCreditsLeft) : '-', r ? usd(r.pending) : '-'];
    if (live === undefined) {
      rows.push([...shown, '', '']);
      continue;
    }
    let verdict: string;
    let liveShown: string;
    if (untilMs === undefined) {
      const l = live.balances.get(id);
      liveShown = l ? `${usd(l.balance)} / ${l.testCreditsLeft} / ${usd(l.pending)}` : 'missing';
      const same = l !== undefined && r !== undefined && l.balance === r.balance && l.testCreditsLeft === r.testCreditsLeft && l.pending === r.pending;
      verdict = same ? 'ok' : 'DIFF';
    } else {
      const ledgerBalance = ledgerBalanceAt(ctx.db, id, replayed.position);
      liveShown = usd(ledgerBalance);
      verdict = r !== undefined && r.balance === ledgerBalance ? 'ok' : 'DIFF';
    }
    if (verdict !== 'ok') differences++;
    rows.push([...shown, liveShown, verdict]);
  }
  const liveHeader = untilMs === undefined ? 'live balance / credits / pending' : 'statement balance';
  ctx.out(table(['account', 'balance', 'test credits', 'pending', live === undefined ? '' : liveHeader, ''], rows));
  ctx.out(`${ids.size} accounts, ${differences} differing\n`);
  return { position: replayed.position, events: replayed.events, seconds, balances: replayed.balances, differences, compared: live !== undefined };
}
