/**
 * An independent check of invariants I1-I6 and of the log's continuity, for `ledger
 * verify`. It shares no code with the account decider or the projections on
 * purpose: a bug there must not hide itself here. It folds the events as
 * stored (validated by the domain's schemas, the only thing it borrows) and
 * reports every event that breaks a rule, with its stream and revision.
 *
 * Duplicates move no money here: a second charge, settlement, credit or
 * reversal of the same thing is reported and skipped, so it yields one report
 * instead of a cascade. A charge that overdraws (I3) did spend the money, so
 * it counts, and each later send while the balance is negative is reported
 * too: the decider refuses those. I1 is checked by comparing this fold with
 * the live balances read model and ledger statements.
 */
import { AccountEvent, OtpEvent } from '#domain';
import type { RecordedEvent } from '#eventstore';

/**
 * Streams that coordinate processes and hold no money (the distributed dispatchers' phone windows,
 * `phone-window-*`; the relay lease, `relay-lease-*`; API replicas' Idempotency-Key claims,
 * `idempotency-*`): only their last event matters, and an operator may trim them (EventStoreDB's
 * `$maxCount`), so their revisions are not checked for gaps.
 */
const COORDINATION = ['phone-window-', 'relay-lease-', 'idempotency-'];

export type InvariantId = 'I1' | 'I2' | 'I3' | 'I4' | 'I5' | 'I6' | 'log' | 'schema';

export interface CheckerOptions {
  /** The SQLite log numbers its events 1, 2, 3…, so a gap is a deleted event (EventStoreDB's positions are byte offsets). */
  densePositions?: boolean;
  /** I6: an OTP still unsettled this long after its charge, by the time of the log's last event, is reported. */
  settleWithinMs?: number;
}

export interface Violation {
  invariant: InvariantId;
  streamId: string;
  revision: bigint;
  position: bigint;
  message: string;
}

interface Charge {
  amount: bigint;
  atMs: number;
  position: bigint;
  fundedBy: 'balance' | 'test_credit';
  settled: 'delivered' | 'refunded' | undefined;
  streamId: string;
  revision: bigint;
}

interface Deposit {
  amount: bigint;
  reversed: boolean;
  revision: bigint;
}

export interface AccountFigures {
  opened: boolean;
  balance: bigint;
  pending: bigint;
  testCreditsGranted: number;
  /** Test-funded charges net of their refunds. */
  testCreditsUsed: number;
  lastRevision: bigint;
  deposits: Map<string, Deposit>;
}

const ACCOUNT = 'account-';
const OTP = 'otp-';

export class InvariantChecker {
  readonly accounts = new Map<string, AccountFigures>();
  private readonly charges = new Map<string, Charge>();
  /** Transfers credited anywhere, by `chainId:txHash:logIndex` (I4 is global: a transfer pays one account). */
  private readonly credited = new Map<string, string>();
  /** OtpRequested waiting for its Charged, by stream. */
  private readonly requested = new Map<string, { otpId: string; revision: bigint; position: bigint }>();
  readonly violations: Violation[] = [];
  events = 0;
  /** Each stream's next revision (numbers: revisions stay far below 2^53, and a million streams cost less so). */
  private readonly nextRevision = new Map<string, number>();
  private lastPosition = 0n;
  private lastCreated: string | undefined;

  constructor(private readonly options: CheckerOptions = {}) {}

  private report(e: RecordedEvent, invariant: InvariantId, message: string): void {
    this.violations.push({ invariant, streamId: e.streamId, revision: e.revision, position: e.position, message });
  }

  private account(id: string): AccountFigures {
    let a = this.accounts.get(id);
    if (a === undefined) {
      a = { opened: false, balance: 0n, pending: 0n, testCreditsGranted: 0, testCreditsUsed: 0, lastRevision: -1n, deposits: new Map() };
      this.accounts.set(id, a);
    }
    return a;
  }

  check(e: RecordedEvent): void {
    this.events++;
    this.checkContinuity(e);
    if (e.streamId.startsWith(ACCOUNT)) this.checkAccountEvent(e, e.streamId.slice(ACCOUNT.length));
    else if (e.streamId.startsWith(OTP)) {
      const parsed = OtpEvent.safeParse({ type: e.type, data: e.data });
      if (!parsed.success) this.report(e, 'schema', `not a valid ${e.type} event: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    }
  }

  /**
   * The log's continuity: every stream's revisions run 0, 1, 2… and, on SQLite, positions 1, 2, 3…
   * An event deleted from the log leaves a gap here even when the money still adds up.
   */
  private checkContinuity(e: RecordedEvent): void {
    if (COORDINATION.some((prefix) => e.streamId.startsWith(prefix))) return void this.checkPosition(e);
    const expected = this.nextRevision.get(e.streamId) ?? 0;
    const revision = Number(e.revision);
    if (revision > expected) this.report(e, 'log', `revision${revision - expected > 1 ? `s ${expected}-${revision - 1}` : ` ${expected}`} of this stream missing from the log`);
    else if (revision < expected) this.report(e, 'log', `revision ${revision} of this stream appears again`);
    this.nextRevision.set(e.streamId, Math.max(expected, revision + 1));
    this.checkPosition(e);
  }

  private checkPosition(e: RecordedEvent): void {
    if (this.options.densePositions === true && e.position !== this.lastPosition + 1n) {
      const from = this.lastPosition + 1n;
      this.report(e, 'log', e.position > from ? `position${e.position - from > 1n ? `s ${from}-${e.position - 1n}` : ` ${from}`} missing from the log` : `position ${e.position} out of order`);
    }
    if (e.position > this.lastPosition) this.lastPosition = e.position;
    this.lastCreated = e.created;
  }

  private checkAccountEvent(e: RecordedEvent, accountId: string): void {
    const parsed = AccountEvent.safeParse({ type: e.type, data: e.data });
    if (!parsed.success) {
      this.report(e, 'schema', `not a valid ${e.type} event: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      return;
    }
    const ev = parsed.data;
    const a = this.account(accountId);
    a.lastRevision = e.revision;
    const waiting = this.requested.get(e.streamId);
    if (waiting !== undefined && ev.type !== 'Charged') {
      this.requested.delete(e.streamId);
      this.violations.push({
        invariant: 'I2',
        streamId: e.streamId,
        revision: waiting.revision,
        position: waiting.position,
        message: `otp ${waiting.otpId} requested but not charged in the same append`,
      });
    }
    switch (ev.type) {
      case 'AccountOpened':
        a.opened = true;
        a.testCreditsGranted += ev.data.testCredits;
        return;
      case 'DepositCredited': {
        const key = `${ev.data.chainId}:${ev.data.txHash.toLowerCase()}:${ev.data.logIndex}`;
        const first = this.credited.get(key);
        if (first !== undefined) {
          this.report(e, 'I4', `transfer ${key} credited again (first credited on ${first})`);
          return;
        }
        const amount = BigInt(ev.data.amount);
        this.credited.set(key, `${e.streamId}@${e.revision}`);
        a.deposits.set(key, { amount, reversed: false, revision: e.revision });
        a.balance += amount;
        return;
      }
      case 'DepositReversed': {
        const key = `${ev.data.chainId}:${ev.data.txHash.toLowerCase()}:${ev.data.logIndex}`;
        const dep = a.deposits.get(key);
        if (dep === undefined) {
          this.report(e, 'I4', `transfer ${key} reversed but never credited to this account`);
          return;
        }
        if (dep.reversed) {
          this.report(e, 'I4', `transfer ${key} reversed twice`);
          return;
        }
        dep.reversed = true;
        a.balance -= dep.amount;
        return;
      }
      case 'OtpRequested':
        this.requested.set(e.streamId, { otpId: ev.data.otpId, revision: e.revision, position: e.position });
        return;
      case 'Charged': {
        const { otpId, fundedBy } = ev.data;
        const amount = BigInt(ev.data.amount);
        if (waiting === undefined || waiting.otpId !== otpId || waiting.revision !== e.revision - 1n) {
          this.report(e, 'I2', `otp ${otpId} charged without its OtpRequested just before it`);
        }
        this.requested.delete(e.streamId);
        const earlier = this.charges.get(otpId);
        if (earlier !== undefined) {
          this.report(e, 'I2', `otp ${otpId} charged again (first charged on ${earlier.streamId}@${earlier.revision})`);
          return;
        }
        if (!a.opened) this.report(e, 'I3', `otp ${otpId} charged on an account that was never opened`);
        if (a.balance < 0n) this.report(e, 'I3', `otp ${otpId} charged while the balance is negative (${a.balance} micro-USD)`);
        if (fundedBy === 'balance') {
          if (a.balance >= 0n && a.balance < amount) {
            this.report(e, 'I3', `otp ${otpId} charged ${amount} with a balance of ${a.balance}: the balance would go below zero`);
          }
          a.balance -= amount;
          a.pending += amount;
        } else {
          if (a.testCreditsUsed + 1 > a.testCreditsGranted) {
            this.report(e, 'I5', `otp ${otpId} funded by a test credit beyond the ${a.testCreditsGranted} granted`);
          }
          a.testCreditsUsed += 1;
        }
        // Recorded times on both sides of I6 (the store's clock), as the log's end is one.
        this.charges.set(otpId, { amount, atMs: Date.parse(e.created), position: e.position, fundedBy, settled: undefined, streamId: e.streamId, revision: e.revision });
        return;
      }
      case 'Delivered':
      case 'Refunded': {
        const otpId = ev.data.otpId;
        const charge = this.charges.get(otpId);
        const what = ev.type === 'Delivered' ? 'delivered' : 'refunded';
        if (charge === undefined || charge.streamId !== e.streamId) {
          this.report(e, 'I2', `otp ${otpId} ${what} but never charged to this account`);
          return;
        }
        if (charge.settled !== undefined) {
          this.report(e, 'I2', `otp ${otpId} ${what} after it was already ${charge.settled}`);
          return;
        }
        if (ev.type === 'Refunded') {
          const amount = BigInt(ev.data.amount);
          if (amount !== charge.amount || ev.data.fundedBy !== charge.fundedBy) {
            this.report(
              e,
              'I2',
              `otp ${otpId} refund of ${amount} to ${ev.data.fundedBy} does not return its charge of ${charge.amount} from ${charge.fundedBy}`,
            );
          }
        }
        charge.settled = what;
        if (charge.fundedBy === 'balance') {
          a.pending -= charge.amount;
          if (what === 'refunded') a.balance += charge.amount;
        } else if (what === 'refunded') a.testCreditsUsed -= 1;
        return;
      }
      default:
        return;
    }
  }

  /**
   * Reports requests still waiting for their charge at the end of the log and (I6) charges left
   * unsettled for longer than `settleWithinMs` before the log's last event: expiry refunds an OTP
   * by its deadline, across restarts, so only a lost settlement leaves one open that long.
   */
  finish(): void {
    for (const [streamId, w] of this.requested) {
      this.violations.push({ invariant: 'I2', streamId, revision: w.revision, position: w.position, message: `otp ${w.otpId} requested but never charged` });
    }
    this.requested.clear();
    const within = this.options.settleWithinMs;
    if (within === undefined || this.lastCreated === undefined) return;
    const lastMs = Date.parse(this.lastCreated);
    for (const [otpId, c] of this.charges) {
      if (c.settled !== undefined || lastMs - c.atMs <= within) continue;
      const at = new Date(c.atMs).toISOString();
      this.violations.push({
        invariant: 'I6',
        streamId: c.streamId,
        revision: c.revision,
        position: c.position,
        message: `otp ${otpId} charged (recorded ${at}) is neither delivered nor refunded ${Math.round((lastMs - c.atMs) / 1000)} s later (the log ends at ${this.lastCreated})`,
      });
    }
  }
}
