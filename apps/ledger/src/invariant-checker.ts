/**
 * An independent check of invariants I1-I5 over the whole log, for `ledger
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

export type InvariantId = 'I1' | 'I2' | 'I3' | 'I4' | 'I5' | 'schema';

export interface Violation {
  invariant: InvariantId;
  streamId: string;
  revision: bigint;
  position: bigint;
  message: string;
}

interface Charge {
  amount: bigint;
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
    if (e.streamId.startsWith(ACCOUNT)) this.checkAccountEvent(e, e.streamId.slice(ACCOUNT.length));
    else if (e.streamId.startsWith(OTP)) {
      const parsed = OtpEvent.safeParse({ type: e.type, data: e.data });
      if (!parsed.success) this.report(e, 'schema', `not a valid ${e.type} event: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    }
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
        this.charges.set(otpId, { amount, fundedBy, settled: undefined, streamId: e.streamId, revision: e.revision });
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

  /** Reports requests still waiting for their charge at the end of the log. */
  finish(): void {
    for (const [streamId, w] of this.requested) {
      this.violations.push({ invariant: 'I2', streamId, revision: w.revision, position: w.position, message: `otp ${w.otpId} requested but never charged` });
    }
    this.requested.clear();
  }
}
