/**
 * Random command sequences against the account decider. The invariants are
 * checked against a ledger recomputed from the emitted events alone, never
 * from the decider's own state, so a bug in evolve cannot hide itself.
 */
import fc from 'fast-check';
import { type AccountCommand, type AccountState, accountDecider, idempotencyMatch, type IdempotencyRecord, matchIdempotencyRecord, TEST_ATTEMPTS_PER_CREDIT } from './account.decider.js';
import {
  AccountEvent as AccountEventSchema,
  type AccountEvent,
  type DeliveryProof,
  type FundedBy,
  type RefundReason,
} from './account.events.js';
import { fold } from './decider.js';
import { DomainError, type ErrorCode } from './errors.js';
import { at, creditDeposit, hex64, openAccount, refundOtp, markDelivered, reverseDeposit, sendOtp } from './testing/account.fixtures.js';

type Action =
  | { kind: 'open'; testCredits: number }
  | { kind: 'credit'; deposit: number; amount: bigint }
  | { kind: 'reverse'; deposit: number }
  | { kind: 'send'; price: bigint; reuse: number | null; key: number | null; body: number }
  | { kind: 'deliver'; pick: number; via: DeliveryProof }
  | { kind: 'refund'; pick: number; reason: RefundReason };

// Small pools make duplicates (credits, reversals, settlements, keys) common.
const DEPOSITS = 6;
const KEYS = 3;
const BODIES = 2;

const open = fc.record({ kind: fc.constant('open' as const), testCredits: fc.integer({ min: 0, max: 4 }) });
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 1, arbitrary: open },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('credit' as const),
      deposit: fc.nat(DEPOSITS - 1),
      amount: fc.oneof(fc.noBias(fc.bigInt({ min: 1n, max: 100_000n })), fc.constantFrom(0n, 1_000_000n)),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('reverse' as const), deposit: fc.nat(DEPOSITS - 1) }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('send' as const),
      price: fc.oneof(fc.noBias(fc.bigInt({ min: 0n, max: 60_000n })), fc.constantFrom(0n, 22_000n)),
      // Mostly fresh ids; a reused one stands for a redelivered or buggy SendOtp.
      reuse: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat(50) }),
      key: fc.option(fc.nat(KEYS - 1), { freq: 2 }),
      body: fc.nat(BODIES - 1),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('deliver' as const),
      pick: fc.nat(60),
      via: fc.constantFrom<DeliveryProof>('receipt', 'voice_answer', 'feedback'),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('refund' as const),
      pick: fc.nat(60),
      reason: fc.constantFrom<RefundReason>('undelivered', 'expired', 'rejected'),
    }),
  },
);
/** Most runs open first; some start with commands the closed account must refuse. */
const script = fc
  .tuple(fc.option(open, { freq: 10 }), fc.array(action, { minLength: 5, maxLength: 59, size: 'max' }))
  .map(([first, rest]) => (first ? [first, ...rest] : rest));

const REFUSALS: Record<Action['kind'], readonly ErrorCode[]> = {
  open: ['account_exists'],
  credit: ['account_not_open'],
  reverse: ['account_not_open'],
  send: ['account_not_open', 'insufficient_balance', 'already_exists', 'idempotency_conflict'],
  deliver: ['account_not_open'],
  refund: ['account_not_open'],
};

interface Run {
  events: AccountEvent[];
  state: AccountState;
  refusals: ErrorCode[];
  /** Kinds of the commands that were accepted but changed nothing (duplicates, replays). */
  noops: Action['kind'][];
}

const STEP_MS = 7_000;

function toCommand(a: Action, step: number, otpIds: readonly string[]): AccountCommand {
  // 7 s apart: a key used again within two steps is still in the account's state (its last 20 s of
  // keys), one used earlier is the read model's, so scripts go both ways.
  const when = at(step * STEP_MS);
  const pickOtp = (pick: number) => otpIds[pick % (otpIds.length + 1)] ?? 'otp_never_sent';
  switch (a.kind) {
    case 'open':
      return openAccount(a.testCredits);
    case 'credit':
      return creditDeposit({ tx: a.deposit }, a.amount, when);
    case 'reverse':
      return reverseDeposit({ tx: a.deposit }, when);
    case 'send': {
      const otpId = a.reuse !== null && otpIds.length > 0 ? otpIds[a.reuse % otpIds.length]! : `otp_${step}`;
      const idem = a.key === null ? {} : { idempotencyKey: `key-${a.key}`, requestHash: hex64(`${a.body + 1}`) };
      return sendOtp(otpId, a.price, { at: when, ...idem });
    }
    case 'deliver':
      return markDelivered(pickOtp(a.pick), a.via, when);
    case 'refund':
      return refundOtp(pickOtp(a.pick), a.reason, when);
  }
}

/** Runs the script like the command path does: decide on the cached state, then evolve it. */
function run(script: readonly Action[]): Run {
  let state = accountDecider.initialState();
  const events: AccountEvent[] = [];
  const otpIds: string[] = [];
  const refusals: ErrorCode[] = [];
  const noops: Action['kind'][] = [];
  /** Request hash of the OTP each Idempotency-Key created; scripts are shorter than the retention. */
  const keyedHashes = new Map<string, string | undefined>();
  const sendKeys = new Map<string, IdempotencyRecord>();
  script.forEach((a, step) => {
    const command = toCommand(a, step, otpIds);
    const balanceBefore = state.balance;
    const creditsBefore = state.testCreditsLeft;
    // Test credits pay only while their sends are not used up (TEST_ATTEMPTS_PER_CREDIT each, refunded ones included).
    const testPays = creditsBefore > 0 && state.testCharges < state.testCreditsGranted * TEST_ATTEMPTS_PER_CREDIT;
    const key = command.type === 'SendOtp' ? command.otp.idempotencyKey : undefined;
    const seen = key !== undefined && keyedHashes.has(key) && command.type === 'SendOtp';
    const replay = seen && keyedHashes.get(key) === command.otp.requestHash;
    // As the API does: a key the state no longer remembers (past its 20 s) is looked up in the
    // read model of send keys (here: every keyed send so far) before the command is decided.
    if (key !== undefined && command.type === 'SendOtp' && idempotencyMatch(state, key, command.otp.requestHash, Date.parse(command.otp.at)).kind === 'fresh') {
      const earlier = matchIdempotencyRecord(sendKeys.get(key), command.otp.requestHash, Date.parse(command.otp.at));
      if (earlier.kind === 'conflict') {
        expect(seen && !replay).toBe(true);
        refusals.push('idempotency_conflict');
        return;
      }
      if (earlier.kind === 'replay') {
        expect(replay).toBe(true);
        noops.push(a.kind);
        return;
      }
    }
    let emitted: AccountEvent[];
    try {
      emitted = accountDecider.decide(command, state);
    } catch (error) {
      expect(error).toBeInstanceOf(DomainError);
      const { code } = error as DomainError;
      expect(REFUSALS[a.kind]).toContain(code);
      // I7: a used key with another body is refused, and only then.
      expect(code === 'idempotency_conflict').toBe(seen && !replay);
      if (code === 'insufficient_balance' && command.type === 'SendOtp') {
        // I3: refused only when it had to be.
        expect(balanceBefore < 0n || (!testPays && balanceBefore < command.price)).toBe(true);
      }
      refusals.push(code);
      return;
    }
    expect(seen && !replay).toBe(false);
    // I7: a replay creates nothing, whatever happened to the account since.
    if (replay) expect(emitted).toEqual([]);
    if (emitted.length === 0) noops.push(a.kind);
    for (const e of emitted) {
      expect(AccountEventSchema.parse(e)).toEqual(e);
      state = accountDecider.evolve(state, e);
      events.push(e);
      if (e.type === 'OtpRequested' && !otpIds.includes(e.data.otpId)) otpIds.push(e.data.otpId);
      if (e.type === 'OtpRequested' && e.data.idempotencyKey !== undefined) {
        keyedHashes.set(e.data.idempotencyKey, e.data.requestHash);
        sendKeys.set(e.data.idempotencyKey, { requestHash: e.data.requestHash, otpId: e.data.otpId, atMs: Date.parse(e.data.at) });
      }
    }
  });
  return { events, state, refusals, noops };
}

interface Ledger {
  balance: bigint;
  pending: bigint;
  testCreditsGranted: number;
  testCreditsSpent: number;
  /** The lowest balance the account went through. */
  lowest: bigint;
}

/** The finance view: replays the events with no help from the decider and asserts I1-I5 and I7 along the way. */
function audit(events: readonly AccountEvent[]): Ledger {
  const ledger: Ledger = { balance: 0n, pending: 0n, testCreditsGranted: 0, testCreditsSpent: 0, lowest: 0n };
  const credits = new Map<string, bigint>();
  const reversals = new Set<string>();
  const charges = new Map<string, { amount: bigint; fundedBy: FundedBy }>();
  const settled = new Set<string>();
  const keys = new Set<string>();

  events.forEach((e, i) => {
    const before = ledger.balance;
    switch (e.type) {
      case 'AccountOpened':
        expect(i).toBe(0);
        ledger.testCreditsGranted += e.data.testCredits;
        break;
      case 'DepositCredited': {
        const key = `${e.data.chainId}:${e.data.txHash.toLowerCase()}:${e.data.logIndex}`;
        expect(credits.has(key)).toBe(false); // I4: credited at most once
        credits.set(key, BigInt(e.data.amount));
        ledger.balance += BigInt(e.data.amount);
        break;
      }
      case 'DepositReversed': {
        const key = `${e.data.chainId}:${e.data.txHash.toLowerCase()}:${e.data.logIndex}`;
        expect(credits.has(key)).toBe(true); // I4: only after being credited
        expect(reversals.has(key)).toBe(false); // I4: reversed at most once
        reversals.add(key);
        ledger.balance -= credits.get(key)!;
        break;
      }
      case 'OtpRequested': {
        // I2: the charge is appended with the request, in the same decision.
        expect(events[i + 1]).toMatchObject({ type: 'Charged', data: { otpId: e.data.otpId } });
        const key = e.data.idempotencyKey;
        if (key !== undefined) {
          // I7: every script spans less than the retention, so one key makes one OTP.
          expect(keys.has(key)).toBe(false);
          keys.add(key);
        }
        break;
      }
      case 'Charged': {
        const { otpId, fundedBy } = e.data;
        const amount = BigInt(e.data.amount);
        expect(events[i - 1]).toMatchObject({ type: 'OtpRequested', data: { otpId } });
        expect(charges.has(otpId)).toBe(false); // I2: charged exactly once
        // I3: no send, whatever funds it, is decided on a negative balance.
        expect(ledger.balance).toBeGreaterThanOrEqual(0n);
        charges.set(otpId, { amount, fundedBy });
        if (fundedBy === 'balance') {
          ledger.balance -= amount;
          ledger.pending += amount;
          expect(ledger.balance).toBeGreaterThanOrEqual(0n); // I3
        } else {
          ledger.testCreditsSpent += 1;
          expect(ledger.testCreditsSpent).toBeLessThanOrEqual(ledger.testCreditsGranted); // I5
        }
        break;
      }
      case 'Delivered': {
        const charge = charges.get(e.data.otpId);
        expect(charge).toBeDefined(); // I2: settles only a charge
        expect(settled.has(e.data.otpId)).toBe(false); // I2: never twice, never both
        settled.add(e.data.otpId);
        if (charge!.fundedBy === 'balance') ledger.pending -= charge!.amount;
        break;
      }
      case 'Refunded': {
        const charge = charges.get(e.data.otpId);
        expect(charge).toBeDefined();
        expect(settled.has(e.data.otpId)).toBe(false);
        settled.add(e.data.otpId);
        // I2: exactly what was charged, to where it came from.
        expect({ amount: BigInt(e.data.amount), fundedBy: e.data.fundedBy }).toEqual(charge);
        if (charge!.fundedBy === 'balance') {
          ledger.balance += charge!.amount;
          ledger.pending -= charge!.amount;
        } else {
          ledger.testCreditsSpent -= 1;
        }
        break;
      }
      case 'ApiKeyIssued':
      case 'ApiKeyRevoked':
      case 'WebhookConfigured':
      case 'DepositAddressAssigned':
        break;
    }
    // I3: whatever leaves the balance lower and below zero must be a deposit reversal.
    if (ledger.balance < 0n && ledger.balance < before) expect(e.type).toBe('DepositReversed');
    if (ledger.balance < ledger.lowest) ledger.lowest = ledger.balance;
  });
  return ledger;
}

const PROPERTY = { numRuns: 200 };

function decideOrCode(command: AccountCommand, state: AccountState): AccountEvent[] | ErrorCode {
  try {
    return accountDecider.decide(command, state);
  } catch (error) {
    return (error as DomainError).code;
  }
}

describe('account decider under random command sequences', () => {
  it('I1: the balance equals Σ credited − Σ reversed − Σ charged(balance) + Σ refunded(balance), live and replayed', () => {
    let duplicateCredits = 0;
    let reversals = 0;
    fc.assert(
      fc.property(script, (actions) => {
        const { events, state, noops } = run(actions);
        duplicateCredits += noops.filter((k) => k === 'credit').length;
        reversals += events.filter((e) => e.type === 'DepositReversed').length;
        const ledger = audit(events);
        expect(state.balance).toBe(ledger.balance);
        expect(state.pending).toBe(ledger.pending);
        // The cached state that decided every command equals a full replay of the log.
        expect(fold(accountDecider, events)).toEqual(state);
      }),
      PROPERTY,
    );
    expect(duplicateCredits).toBeGreaterThan(0);
    expect(reversals).toBeGreaterThan(0);
  });

  it('I2: each otpId is charged once and settled at most once, refunds mirror their charge', () => {
    let reusedIdsRefused = 0;
    let duplicateSettlements = 0;
    fc.assert(
      fc.property(script, (actions) => {
        const { events, state, refusals, noops } = run(actions);
        reusedIdsRefused += refusals.filter((c) => c === 'already_exists').length;
        duplicateSettlements += noops.filter((k) => k === 'deliver' || k === 'refund').length;
        audit(events);
        const charged = events.filter((e) => e.type === 'Charged').map((e) => e.data.otpId);
        const settled = events.filter((e) => e.type === 'Delivered' || e.type === 'Refunded').map((e) => e.data.otpId);
        expect(new Set(charged).size).toBe(charged.length);
        expect(new Set(settled).size).toBe(settled.length);
        // Every charge is either settled or still open, never lost.
        expect([...state.open.keys()].sort()).toEqual(charged.filter((id) => !settled.includes(id)).sort());
      }),
      PROPERTY,
    );
    expect(reusedIdsRefused).toBeGreaterThan(0);
    expect(duplicateSettlements).toBeGreaterThan(0);
  });

  it('I3: no charge is decided below zero; only reversals leave the balance negative', () => {
    // The audit asserts I3 event by event; these counters keep the property from passing vacuously.
    let wentNegative = 0;
    let refusedForBalance = 0;
    fc.assert(
      fc.property(script, (actions) => {
        const { events, refusals } = run(actions);
        if (audit(events).lowest < 0n) wentNegative += 1;
        refusedForBalance += refusals.filter((c) => c === 'insufficient_balance').length;
      }),
      PROPERTY,
    );
    expect(wentNegative).toBeGreaterThan(0);
    expect(refusedForBalance).toBeGreaterThan(0);
  });

  it('snapshots: a state written down at any point of a history, read back and folded on, is the full fold, and decides alike', () => {
    let withOpenCharges = 0;
    let withKeys = 0;
    fc.assert(
      fc.property(script, fc.nat(), (actions, cut) => {
        const { events } = run(actions);
        const at = cut % (events.length + 1);
        const codec = accountDecider.snapshot!;
        const taken = fold(accountDecider, events.slice(0, at));
        if (taken.open.size > 0) withOpenCharges += 1;
        if (taken.idempotency.size > 0) withKeys += 1;
        const restored = codec.decode(JSON.parse(JSON.stringify(codec.encode(taken))));
        const full = fold(accountDecider, events);
        const folded = events.slice(at).reduce(accountDecider.evolve, restored);
        expect(folded).toEqual(full);
        // Same decisions on both: a send reusing each key seen, a settlement of each open charge.
        const probes = [...full.idempotency.keys()].map((key) => sendOtp('otp_probe', 1n, { at: '2030-01-01T00:00:00.000Z', idempotencyKey: key, requestHash: hex64('f') }));
        for (const otpId of full.open.keys()) probes.push(refundOtp(otpId));
        for (const probe of probes) expect(decideOrCode(probe, folded)).toEqual(decideOrCode(probe, full));
      }),
      PROPERTY,
    );
    expect(withOpenCharges).toBeGreaterThan(0);
    expect(withKeys).toBeGreaterThan(0);
  });

  it('I5: test-funded charges net of refunds never exceed the test credits granted', () => {
    let testRefunds = 0;
    fc.assert(
      fc.property(script, (actions) => {
        const { events, state } = run(actions);
        testRefunds += events.filter((e) => e.type === 'Refunded' && e.data.fundedBy === 'test_credit').length;
        const ledger = audit(events);
        expect(ledger.testCreditsSpent).toBeLessThanOrEqual(ledger.testCreditsGranted);
        expect(state.testCreditsLeft).toBe(ledger.testCreditsGranted - ledger.testCreditsSpent);
        expect(state.testCreditsLeft).toBeGreaterThanOrEqual(0);
      }),
      PROPERTY,
    );
    expect(testRefunds).toBeGreaterThan(0);
  });
});
