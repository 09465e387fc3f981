/**
 * `ledger verify`: checks I1-I6 and the log's continuity (no stream revision or, on SQLite, position
 * missing) over the whole log with the independent
 * InvariantChecker and prints each violation with its stream and revision.
 * I1 is checked against the live balances read model and ledger statements
 * as of their checkpoint (read in one snapshot): the fold's balance, pending
 * and test credits must equal the read model's, account by account.
 * Exit 1 on any violation.
 */
import { type AccountBalance, ledgerBalanceAt, listBalances, moneyProjection, pageReader, readCheckpoint } from '#projections';
import { usd } from './format.js';
import { SqliteEventStore } from '#eventstore';
import { InvariantChecker, type Violation } from './invariant-checker.js';
import type { LedgerContext } from './ledger-context.js';

export interface VerifyResult {
  events: number;
  accounts: number;
  violations: Violation[];
  seconds: number;
}

function compareWithReadModel(ctx: LedgerContext, checker: InvariantChecker, position: bigint, live: Map<string, AccountBalance>): Violation[] {
  const out: Violation[] = [];
  const ids = new Set([...checker.accounts.keys(), ...live.keys()]);
  for (const id of [...ids].sort()) {
    const a = checker.accounts.get(id);
    const streamId = `account-${id}`;
    const revision = a?.lastRevision ?? -1n;
    const balance = a?.balance ?? 0n;
    const pending = a?.pending ?? 0n;
    const credits = a === undefined ? 0 : a.testCreditsGranted - a.testCreditsUsed;
    const b = live.get(id);
    const problems: string[] = [];
    if (b === undefined) {
      if (a !== undefined && (a.opened || balance !== 0n)) problems.push('missing from the balances read model');
    } else {
      if (b.balance !== balance) problems.push(`balance ${usd(b.balance)} in the read model, ${usd(balance)} from the log`);
      if (b.pending !== pending) problems.push(`pending ${usd(b.pending)} in the read model, ${usd(pending)} from the log`);
      if (b.testCreditsLeft !== credits) problems.push(`test credits ${b.testCreditsLeft} in the read model, ${credits} from the log`);
    }
    const statementBalance = ledgerBalanceAt(ctx.db, id, position);
    if (statementBalance !== balance) problems.push(`statement balance ${usd(statementBalance)}, ${usd(balance)} from the log`);
    for (const message of problems) out.push({ invariant: 'I1', streamId, revision, position, message: `${message} (as of position ${position})` });
  }
  return out;
}

/** I6 allows expiry's own lag on top of the expiry window before an open charge counts as lost. */
export const SETTLE_GRACE_MS = 5 * 60_000;

export async function verifyCommand(ctx: LedgerContext, options: { batchSize?: number; expiryMs?: number } = {}): Promise<VerifyResult> {
  const started = performance.now();
  const snapshot = ctx.db.transaction(() => {
    const cp = readCheckpoint(ctx.db, moneyProjection.name);
    if (cp === undefined || cp.version !== moneyProjection.version) return undefined;
    return { position: cp.position, balances: new Map(listBalances(ctx.db).map((b) => [b.accountId, b])) };
  })();
  const checker = new InvariantChecker({
    densePositions: ctx.store instanceof SqliteEventStore,
    settleWithinMs: (options.expiryMs ?? 600_000) + SETTLE_GRACE_MS,
  });
  const read = pageReader(ctx.store);
  const head = await ctx.store.headPosition();
  let position = 0n;
  let compared: Violation[] | undefined;
  // Balances are compared when the fold reaches the read model's checkpoint; the rest of the log is still checked.
  const compareIfDue = (next: bigint | undefined) => {
    if (snapshot !== undefined && compared === undefined && (next === undefined || next > snapshot.position)) {
      compared = compareWithReadModel(ctx, checker, snapshot.position, snapshot.balances);
    }
  };
  while (position < head) {
    const page = await read(position, options.batchSize ?? 5_000);
    if (page.length === 0) break;
    for (const e of page) {
      if (e.position > head) break;
      compareIfDue(e.position);
      checker.check(e);
      position = e.position;
    }
  }
  compareIfDue(undefined);
  checker.finish();
  const violations = [...checker.violations, ...(compared ?? [])].sort((x, y) => (x.position < y.position ? -1 : x.position > y.position ? 1 : 0));
  const seconds = (performance.now() - started) / 1000;

  for (const v of violations) ctx.out(`${v.invariant} ${v.streamId}@${v.revision} (position ${v.position}): ${v.message}\n`);
  ctx.out(
    `verify of ${ctx.source}: ${checker.events} events, ${checker.accounts.size} accounts checked for I1-I6 and the log's continuity in ${seconds.toFixed(2)} s; ` +
      `${snapshot === undefined ? 'no balances read model to compare (I1 checked on the log only); ' : ''}` +
      `${violations.length} violation${violations.length === 1 ? '' : 's'}\n`,
  );
  return { events: checker.events, accounts: checker.accounts.size, violations, seconds };
}
