/**
 * Random command sequences against the OTP decider: attempts in and out of order, failures, final
 * failures, receipts (duplicate, raced ahead of their Routed, late, after expiry, from another
 * upstream, naming another attempt or message id), expiry at any point, and commands redelivered
 * at random later points. Decisions are checked against a view of the log built from the emitted
 * events alone, never from the decider's state, so a bug in evolve cannot hide itself.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { fold } from './decider.js';
import { DomainError } from './errors.js';
import { messageKey, type OtpCommand, type OtpState, otpDecider, type ReceiptClaim, refundWaits } from './otp.decider.js';
import { OtpEvent as OtpEventSchema, type OtpEvent, RECEIPT_STATUSES, type ReceiptStatus } from './otp.events.js';
import { holds } from './testing/property.js';

const PROVIDERS = ['acme', 'backup', 'evil'] as const;
type Provider = (typeof PROVIDERS)[number];
/** Attempts a receipt may name that the stream has not recorded (yet). */
const ATTEMPTS = [1, 2, 3, 4];
const T0 = Date.parse('2025-03-01T00:00:00.000Z');
/** A script of 60 steps spans seven minutes: expiry comes anywhere in it, receipts before and after. */
const STEP_MS = 7_000;
const iso = (ms: number): string => new Date(T0 + ms).toISOString();

/** Receipt statuses after which a message has nothing more to say, and those that prove delivery (otp.decider.ts). */
const FINAL: ReadonlySet<ReceiptStatus> = new Set(RECEIPT_STATUSES.filter((s) => s !== 'accepted'));
const DELIVERING: ReadonlySet<ReceiptStatus> = new Set<ReceiptStatus>(['delivered', 'answered']);

/** The message id an upstream answers a submission with. */
type IdFor = (provider: Provider, attempt: number, slot: number) => string;
/** Every upstream's ids are its own (what the `<otpId>:<attempt>` reference and Idempotency-Key give). */
const distinctIds: IdFor = (provider, attempt) => `${provider}-${attempt}`;
/**
 * Upstreams counting on their own: two of them may answer two attempts of one OTP with the same
 * id (acme's attempt 2 and backup's attempt 3 are both `m2`), and one may answer two attempts
 * with the same id (a counter that started over: `slot` picks the same id again).
 */
const sharedIds: IdFor = (provider, attempt, slot) => `m${slot === 0 ? 0 : attempt + PROVIDERS.indexOf(provider) - 1}`;

type ClaimPick = { provider: 'own' | Provider; attempt: 'own' | 'none' | number } | null;
type Action =
  | { kind: 'route'; step: number; provider: Provider; slot: number }
  | { kind: 'fail'; step: number; provider: Provider; retryable: boolean; final: boolean }
  | { kind: 'receipt'; routed: boolean; pick: number; status: ReceiptStatus; claim: ClaimPick; earlierMs: number }
  | { kind: 'expire' }
  | { kind: 'redeliver'; pick: number };

const provider = fc.constantFrom(...PROVIDERS);
/** Mostly the next attempt; sometimes a redelivered, an older or a skipping one. */
const attemptStep = fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, { weight: 2, arbitrary: fc.constantFrom(0, -1, 2) });
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('route' as const), step: attemptStep, provider, slot: fc.nat(2) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('fail' as const),
      step: attemptStep,
      provider,
      retryable: fc.boolean(),
      final: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('receipt' as const),
      routed: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      pick: fc.nat(40),
      status: fc.constantFrom(...RECEIPT_STATUSES),
      claim: fc.option(
        fc.record({
          provider: fc.oneof({ weight: 3, arbitrary: fc.constant('own' as const) }, { weight: 1, arbitrary: provider }),
          attempt: fc.oneof(
            { weight: 2, arbitrary: fc.constant('own' as const) },
            { weight: 1, arbitrary: fc.constant('none' as const) },
            { weight: 1, arbitrary: fc.constantFrom(...ATTEMPTS) },
          ),
        }),
        { freq: 2 },
      ),
      // An upstream's own time: a late receipt can predate what the stream holds.
      earlierMs: fc.oneof(fc.constant(0), fc.nat(10 * 60_000)),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'expire' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('redeliver' as const), pick: fc.nat(60) }) },
);
const script = fc.array(action, { minLength: 5, maxLength: 60, size: 'max' });

interface Message {
  id: string;
  provider: string;
  attempt: number;
}

/** The log as an auditor reads it, from its events alone. */
class LogView {
  /** Each recorded attempt's first and only outcome, by attempt number from 1. */
  readonly attempts: { provider: string; routedAs?: string }[] = [];
  /** The newest routing of each message, by upstream and id (an upstream reusing an id moves it to the later attempt). */
  readonly routings = new Map<string, Message>();
  /** Recorded statuses of each message, by upstream and id. */
  readonly receipts = new Map<string, Set<ReceiptStatus>>();
  expired = false;
  finalFailure = false;
  /** What the log holds against its lifecycle, in the order it was appended. */
  readonly breaches: string[] = [];

  apply(e: OtpEvent): void {
    switch (e.type) {
      case 'Routed':
      case 'RouteFailed': {
        if (e.data.attempt !== this.attempts.length + 1) this.breaches.push(`${e.type} of attempt ${e.data.attempt} after attempt ${this.attempts.length}`);
        const routedAs = e.type === 'Routed' ? e.data.providerMessageId : undefined;
        this.attempts.push({ provider: e.data.provider, ...(routedAs !== undefined && { routedAs }) });
        if (e.type === 'Routed') {
          const m = { id: e.data.providerMessageId, provider: e.data.provider, attempt: e.data.attempt };
          this.routings.set(messageKey(m.provider, m.id), m);
        } else if (e.data.final) this.finalFailure = true;
        break;
      }
      case 'ReceiptReceived': {
        if (e.data.provider === undefined) this.breaches.push(`${e.data.providerMessageId} recorded without its upstream`);
        const key = messageKey(e.data.provider ?? '', e.data.providerMessageId);
        const seen = this.receipts.get(key) ?? new Set();
        if (seen.has(e.data.status)) this.breaches.push(`${e.data.provider} ${e.data.providerMessageId} ${e.data.status} recorded twice`);
        this.receipts.set(key, seen.add(e.data.status));
        break;
      }
      case 'Expired':
        if (this.expired) this.breaches.push('Expired twice');
        this.expired = true;
        break;
    }
  }

  /**
   * The documented claim rule (otp.decider.ts, checkClaim): a receipt counts only for a submission
   * this OTP made through the upstream it came from. A message is its upstream and its id. Refused:
   * a message this upstream routed as another attempt, an id routed through another upstream from
   * an upstream with no attempt of this OTP, an attempt made through another upstream or routed
   * under another message id. Allowed: an attempt not recorded yet, one that failed through the
   * same upstream.
   */
  claimHolds(claim: ReceiptClaim, id: string): boolean {
    const own = this.routings.get(messageKey(claim.provider, id));
    if (own !== undefined) return claim.attempt === undefined || claim.attempt === own.attempt;
    const tried = this.attempts.some((a) => a.provider === claim.provider);
    if (!tried && [...this.routings.values()].some((r) => r.id === id)) return false;
    if (claim.attempt === undefined) return true;
    const made = this.attempts[claim.attempt - 1];
    return made === undefined || (made.provider === claim.provider && made.routedAs === undefined);
  }

  /** What the log calls for: the events to append, or a refusal. */
  decision(cmd: OtpCommand): OtpEvent[] | 'refused' {
    switch (cmd.type) {
      case 'RecordRouted':
      case 'RecordRouteFailed': {
        if (cmd.attempt > this.attempts.length + 1) return 'refused';
        if (cmd.attempt <= this.attempts.length) return [];
        const { type, ...data } = cmd;
        return [{ type: type === 'RecordRouted' ? 'Routed' : 'RouteFailed', data } as OtpEvent];
      }
      case 'RecordReceipt': {
        const { provider, providerMessageId, status, raw, at } = cmd;
        if (this.receipts.get(messageKey(provider ?? '', providerMessageId))?.has(status)) return [];
        if (cmd.claim && !this.claimHolds(cmd.claim, providerMessageId)) return 'refused';
        return [{ type: 'ReceiptReceived', data: { ...(provider !== undefined && { provider }), providerMessageId, status, raw, at } }];
      }
      case 'Expire':
        return this.expired ? [] : [{ type: 'Expired', data: { at: cmd.at } }];
    }
  }

  /** Documented in refundWaits: some routed message still lacks a final receipt, or some message reached the user. */
  refundWaits(): boolean {
    const statuses = (key: string) => [...(this.receipts.get(key) ?? [])];
    return [...this.routings.keys()].some((key) => !statuses(key).some((s) => FINAL.has(s))) || [...this.receipts.keys()].some((key) => statuses(key).some((s) => DELIVERING.has(s)));
  }
}

function toCommand(a: Exclude<Action, { kind: 'redeliver' }>, step: number, log: LogView, idFor: IdFor): OtpCommand {
  const at = iso(step * STEP_MS);
  switch (a.kind) {
    case 'route':
    case 'fail': {
      const attempt = Math.max(1, log.attempts.length + a.step);
      if (a.kind === 'fail') {
        return { type: 'RecordRouteFailed', attempt, provider: a.provider, error: 'upstream timeout', retryable: a.retryable, ...(a.final && { final: true }), at };
      }
      return { type: 'RecordRouted', attempt, provider: a.provider, carrier: 'viettel', channel: 'sms', providerMessageId: idFor(a.provider, attempt, a.slot), at };
    }
    case 'receipt': {
      // A message the stream routed, or any one an upstream could name: raced, never sent, someone else's.
      const routed = [...log.routings.values()];
      const pool = PROVIDERS.flatMap((p) => ATTEMPTS.map((n) => ({ id: idFor(p, n, n % 3), provider: p, attempt: n })));
      const candidates = a.routed && routed.length > 0 ? routed : pool;
      const m = candidates[a.pick % candidates.length]!;
      let claim: ReceiptClaim | undefined;
      if (a.claim) {
        const attempt = a.claim.attempt === 'own' ? m.attempt : a.claim.attempt === 'none' ? undefined : a.claim.attempt;
        claim = { provider: a.claim.provider === 'own' ? m.provider : a.claim.provider, ...(attempt !== undefined && { attempt }) };
      }
      const when = Math.max(0, step * STEP_MS - a.earlierMs);
      // Named by the receipt, the OTP is checked against the upstream it came in from; found by its message id, the route is that upstream's.
      return { type: 'RecordReceipt', provider: claim?.provider ?? m.provider, providerMessageId: m.id, status: a.status, raw: `stat:${a.status}`, at: iso(when), ...(claim && { claim }) };
    }
    case 'expire':
      return { type: 'Expire', at };
  }
}

type Outcome = { events: OtpEvent[] } | { refusal: DomainError };

function decide(command: OtpCommand, state: OtpState): Outcome {
  try {
    return { events: otpDecider.decide(command, state) };
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return { refusal: error };
  }
}

/** Whether an outcome is the expected one: these events, or a refusal with this code and reason. */
function matches(outcome: Outcome, expected: OtpEvent[] | { code: string; reason?: string }): boolean {
  if (Array.isArray(expected)) return 'events' in outcome && isDeepStrictEqual(outcome.events, expected);
  return 'refusal' in outcome && outcome.refusal.code === expected.code && outcome.refusal.details.reason === expected.reason;
}

const show = (outcome: Outcome): unknown => ('events' in outcome ? outcome.events : { refusal: outcome.refusal.code, ...outcome.refusal.details });

interface Step {
  command: OtpCommand;
  outcome: Outcome;
  /** The same command decided again at once, on the state it left. */
  again: Outcome;
  /** Whether the same command was accepted (appending or not) at an earlier step. */
  acceptedBefore: boolean;
  /** Whether decide left the state it read as it was. */
  untouched: boolean;
  /** For a receipt on an expired or finally failed OTP: the decision had neither happened. */
  unterminated?: Outcome;
  after: { expired: boolean; finalFailure: boolean; refundWaits: boolean };
}

interface Run {
  steps: Step[];
  events: OtpEvent[];
  state: OtpState;
}

/** Runs the script like the command path: decide on the cached state, then evolve it. */
function run(actions: readonly Action[], idFor: IdFor = distinctIds): Run {
  let state = otpDecider.initialState();
  const log = new LogView();
  const events: OtpEvent[] = [];
  const steps: Step[] = [];
  const accepted = new Set<string>();
  actions.forEach((a, i) => {
    const command = a.kind === 'redeliver' ? steps[a.pick % Math.max(1, steps.length)]?.command : toCommand(a, i, log, idFor);
    if (command === undefined) return;
    const key = JSON.stringify(command);
    const before = snapshot(state);
    const outcome = decide(command, state);
    const untouched = snapshot(state) === before;
    let unterminated: Outcome | undefined;
    if (command.type === 'RecordReceipt' && (state.expired || state.finalFailure)) unterminated = decide(command, { ...state, expired: false, finalFailure: false });
    for (const e of 'events' in outcome ? outcome.events : []) {
      state = otpDecider.evolve(state, e);
      log.apply(e);
      events.push(e);
    }
    steps.push({
      command,
      outcome,
      again: decide(command, state),
      acceptedBefore: accepted.has(key),
      untouched,
      ...(unterminated && { unterminated }),
      after: { expired: state.expired, finalFailure: state.finalFailure, refundWaits: refundWaits(state) },
    });
    if ('events' in outcome) accepted.add(key);
  });
  return { steps, events, state };
}

/** The state as text, its maps and sets in their order: cheap enough to take at every step. */
const snapshot = (s: OtpState): string =>
  [s.lastAttempt, s.failures, s.finalFailure, s.lastReceipt, s.expired, ...[...s.routed].map(([key, r]) => `${key}:${r.attempt}:${r.provider}:${r.providerMessageId}`), ...[...s.attempts].map(([n, a]) => `${n}:${a.provider}:${a.routedAs}`), ...s.receipts].join('|');

/** Walks the run's steps with a fresh LogView, handing each step the log as it stood before it. */
function audit(steps: readonly Step[], check: (step: Step, log: LogView) => void): LogView {
  const log = new LogView();
  for (const step of steps) {
    check(step, log);
    for (const e of 'events' in step.outcome ? step.outcome.events : []) log.apply(e);
  }
  return log;
}

const RUNS = 300;

describe('OTP decider under random command sequences', () => {
  it('lifecycle: attempts run 1, 2, 3… with one outcome each (a skip refused), one Expired, one record per message and status, events as stored', () => {
    holds(
      script,
      (actions, met) => {
        const { steps, events } = run(actions);
        const wrong: unknown[] = [];
        const log = audit(steps, ({ command, outcome }, before) => {
          if (command.type !== 'RecordRouted' && command.type !== 'RecordRouteFailed') return;
          const want = before.decision(command);
          if (!matches(outcome, want === 'refused' ? { code: 'invalid_command' } : want)) wrong.push({ command, got: show(outcome), want });
          if (want === 'refused') met('an attempt that skips one');
          else if (want.length === 0 && before.attempts[command.attempt - 1]?.provider !== command.provider) met('another outcome for a recorded attempt');
        });
        const unstored = events.filter((e) => !isDeepStrictEqual(OtpEventSchema.safeParse(e).data, e));
        return [...wrong, ...log.breaches, ...unstored];
      },
      { numRuns: RUNS, mustMeet: ['an attempt that skips one', 'another outcome for a recorded attempt'] },
    );
  });

  it('terminal states: after Expired or a final failure a receipt is decided as before (a fact, recorded), a second Expire appends nothing, neither state reverts', () => {
    holds(
      script,
      (actions, met) => {
        const wrong: unknown[] = [];
        // Whether the OTP has ended, read from the log: the state's own flags are checked against it.
        audit(run(actions).steps, ({ command, outcome, unterminated, after }, log) => {
          if (command.type === 'Expire' && log.expired && !matches(outcome, [])) wrong.push({ command, got: show(outcome) });
          if (command.type === 'RecordReceipt' && (log.expired || log.finalFailure)) {
            if (unterminated === undefined || !isDeepStrictEqual(show(outcome), show(unterminated))) {
              wrong.push({ command, got: show(outcome), unterminated: unterminated && show(unterminated) });
            }
            if ('events' in outcome && outcome.events.length > 0) met('a receipt recorded after the end');
          }
          const expired = log.expired || ('events' in outcome && outcome.events.some((e) => e.type === 'Expired'));
          const finalFailure = log.finalFailure || ('events' in outcome && outcome.events.some((e) => e.type === 'RouteFailed' && e.data.final === true));
          if (after.expired !== expired || after.finalFailure !== finalFailure) wrong.push({ command, after, log: { expired, finalFailure } });
        });
        return wrong;
      },
      { numRuns: RUNS, mustMeet: ['a receipt recorded after the end'] },
    );
  });

  /** Settlement refunds on a failure receipt only when refundWaits, read after the receipt is recorded, is false. */
  const moneyOutcomeHolds = (idFor: IdFor, mustMeet: string[]) =>
    holds(
      script,
      (actions, met) => {
        const log = new LogView();
        const wrong: unknown[] = [];
        let delivered = false;
        for (const { command, outcome, after } of run(actions, idFor).steps) {
          for (const e of 'events' in outcome ? outcome.events : []) {
            log.apply(e);
            if (e.type === 'Routed' && [...log.routings.values()].some((r) => r.id === e.data.providerMessageId && r.provider !== e.data.provider)) met('one id from two upstreams');
            if (e.type !== 'ReceiptReceived') continue;
            delivered ||= DELIVERING.has(e.data.status);
            const failure = FINAL.has(e.data.status) && !DELIVERING.has(e.data.status);
            if (failure && delivered) met('a failure receipt after a delivery');
            else if (failure && log.refundWaits()) met('a failure receipt while a message is in flight');
          }
          if (after.refundWaits !== log.refundWaits() || (delivered && !after.refundWaits)) wrong.push({ command, refundWaits: after.refundWaits, delivered });
        }
        return [...wrong, ...log.breaches];
      },
      { numRuns: RUNS, mustMeet },
    );

  it('one money outcome: once a receipt proves delivery no failure receipt may refund it, and none may while a routed message awaits its final receipt', () => {
    moneyOutcomeHolds(distinctIds, ['a failure receipt after a delivery', 'a failure receipt while a message is in flight']);
  });

  it('idempotency: a command decided again appends nothing, at once or redelivered any time later; a refused one is refused again', () => {
    holds(
      script,
      (actions, met) => {
        const wrong: unknown[] = [];
        for (const { command, outcome, again, acceptedBefore } of run(actions).steps) {
          const sameAgain = 'refusal' in outcome ? matches(again, { code: outcome.refusal.code, reason: outcome.refusal.details.reason as string | undefined }) : matches(again, []);
          if (!sameAgain) wrong.push({ command, first: show(outcome), again: show(again) });
          if (acceptedBefore) {
            met('a redelivered command');
            if (!matches(outcome, [])) wrong.push({ command, redelivered: show(outcome) });
          }
        }
        return wrong;
      },
      { numRuns: RUNS, mustMeet: ['a redelivered command'] },
    );
  });

  it('replay: the state that decided every command equals a fold of the log from initialState, and decide never writes to it', () => {
    holds(
      script,
      (actions) => {
        const { steps, events, state } = run(actions);
        const replayed = fold(otpDecider, events);
        const written = steps.filter((s) => !s.untouched).map((s) => ({ written: s.command }));
        return isDeepStrictEqual(replayed, state) ? written : [...written, { live: state, replayed }];
      },
      { numRuns: RUNS },
    );
  });

  const claimsHold = (idFor: IdFor) =>
    holds(
      script,
      (actions, met) => {
        const wrong: unknown[] = [];
        audit(run(actions, idFor).steps, ({ command, outcome }, log) => {
          if (command.type !== 'RecordReceipt') return;
          const want = log.decision(command);
          if (!matches(outcome, want === 'refused' ? { code: 'invalid_command', reason: 'receipt_claim' } : want)) wrong.push({ command, got: show(outcome), want });
          if (want === 'refused') met('a claim refused');
          else if (want.length > 0 && !command.claim) met('a receipt found by its message id');
          else if (want.length > 0 && command.claim?.attempt !== undefined && !log.routings.has(messageKey(command.claim.provider, command.providerMessageId))) {
            met(log.attempts[command.claim.attempt - 1] === undefined ? 'a claim that raced its Routed' : 'a claim on an attempt failed through its upstream');
          }
        });
        return wrong;
      },
      {
        numRuns: RUNS,
        mustMeet: ['a claim refused', 'a receipt found by its message id', 'a claim that raced its Routed', 'a claim on an attempt failed through its upstream'],
      },
    );

  it('receipt claims: a receipt that names its OTP counts only when its upstream and attempt match a submission; one found by its message id always counts', () => {
    claimsHold(distinctIds);
  });

  it('receipt claims hold too when upstreams count on their own: two may answer two attempts with one id, one may answer two attempts with one id', () => {
    claimsHold(sharedIds);
  });

  it('one money outcome holds too when upstreams count on their own', () => {
    moneyOutcomeHolds(sharedIds, ['one id from two upstreams', 'a failure receipt after a delivery', 'a failure receipt while a message is in flight']);
  });

  /*
   * One upstream answering two attempts of one OTP with the same id (a counter that started over)
   * cannot be told apart by its receipts: the newest routing holds the id, as in the otp-routes read
   * model, so a claim on the earlier attempt under that id is refused (`sharedIds` runs it). A
   * receipt so refused is not recorded: the OTP settles by another receipt, or is refunded at expiry.
   */
});
