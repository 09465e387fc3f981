/**
 * Random take and give-back commands against one phone's window (I8), from several holders on
 * several dispatchers. Time runs forward (sometimes not at all between two commands), and each
 * dispatcher reads it from its own clock, up to PHONE_WINDOW_SKEW_MS ahead of the others: the
 * skew the constant documents. As the dispatchers do, takes ask for the window plus that allowance.
 * The properties are judged on the true time of each event, which the decider never sees.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { fold } from './decider.js';
import {
  initialPhoneWindowState,
  PHONE_WINDOW_SKEW_MS,
  type PhoneWindowCommand,
  phoneWindowDecider,
  phoneWindowOpensAt,
  type PhoneWindowState,
} from './phone-window.decider.js';
import { PhoneWindowEvent as PhoneWindowEventSchema, type PhoneWindowEvent, phoneWindowHolder } from './phone-window.events.js';
import { holds } from './testing/property.js';

/** I8: the upstream's rule, one submission per phone per 30 s. */
const WINDOW_MS = 30_000;
/** What the dispatchers take and the API replicas read with (dispatcher.consumer.ts, phone-window-in-log.ts). */
const SHARED_WINDOW_MS = WINDOW_MS + PHONE_WINDOW_SKEW_MS;
const HOLDERS = ['otp_a', 'otp_b', 'otp_c'].flatMap((otpId) => [1, 2].map((attempt) => phoneWindowHolder(otpId, attempt)));
const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
const iso = (ms: number): string => new Date(T0 + ms).toISOString();

interface Action {
  kind: 'take' | 'release';
  holder: number;
  /** The dispatcher that sends it, and so the clock it reads. */
  process: number;
  /** True time elapsed since the previous command. */
  advanceMs: number;
}
interface Script {
  /** How far ahead of true time each dispatcher's clock runs: any two differ by at most the skew. */
  clocks: number[];
  /** The same for the API replica that reads the stream after each command. */
  reader: number;
  actions: Action[];
}

const clockOffset = fc.oneof(fc.constantFrom(0, PHONE_WINDOW_SKEW_MS), fc.integer({ min: 0, max: PHONE_WINDOW_SKEW_MS }));
const advance = fc.oneof(
  { weight: 2, arbitrary: fc.constant(0) },
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 3_000 }) },
  { weight: 4, arbitrary: fc.integer({ min: WINDOW_MS - 5_000, max: SHARED_WINDOW_MS + 5_000 }) },
  { weight: 2, arbitrary: fc.constantFrom(WINDOW_MS - PHONE_WINDOW_SKEW_MS, WINDOW_MS, SHARED_WINDOW_MS - 1, SHARED_WINDOW_MS) },
);
const action: fc.Arbitrary<Action> = fc.record({
  kind: fc.oneof({ weight: 3, arbitrary: fc.constant('take' as const) }, { weight: 2, arbitrary: fc.constant('release' as const) }),
  holder: fc.nat(HOLDERS.length - 1),
  process: fc.nat(2),
  advanceMs: advance,
});
const script: fc.Arbitrary<Script> = fc.record({
  clocks: fc.array(clockOffset, { minLength: 3, maxLength: 3 }),
  reader: clockOffset,
  actions: fc.array(action, { minLength: 5, maxLength: 60, size: 'max' }),
});

interface Step {
  command: PhoneWindowCommand;
  trueMs: number;
  emitted: PhoneWindowEvent[];
  /** The same command decided on the state of the stream's last event alone, as an API replica reads it. */
  fromLastEvent: PhoneWindowEvent[];
  /** Whether decide left the state it read as it was. */
  untouched: boolean;
  /** Whether the API replica, reading the last event by its clock after this step, finds the phone free. */
  readerFindsFree: boolean;
}

/** The state an API replica builds from the stream's last event only (apps/api phone-window-in-log.ts). */
const stateOfLast = (events: readonly PhoneWindowEvent[]): PhoneWindowState => {
  const last = events.at(-1);
  return last ? phoneWindowDecider.evolve(initialPhoneWindowState(), last) : initialPhoneWindowState();
};

/** Runs the script like the dispatchers do: decide on the cached state, then evolve it. */
function run({ clocks, reader, actions }: Script, windowMs = SHARED_WINDOW_MS): { steps: Step[]; events: PhoneWindowEvent[]; state: PhoneWindowState } {
  let state = phoneWindowDecider.initialState();
  const events: PhoneWindowEvent[] = [];
  const steps: Step[] = [];
  let trueMs = 0;
  for (const a of actions) {
    trueMs += a.advanceMs;
    const holder = HOLDERS[a.holder]!;
    const at = iso(trueMs + clocks[a.process]!);
    const command: PhoneWindowCommand = a.kind === 'take' ? { type: 'TakePhoneWindow', holder, at, windowMs } : { type: 'ReleasePhoneWindow', holder, at };
    const before = { ...state };
    const emitted = phoneWindowDecider.decide(command, state);
    const untouched = isDeepStrictEqual(state, before);
    const fromLastEvent = phoneWindowDecider.decide(command, stateOfLast(events));
    for (const e of emitted) {
      state = phoneWindowDecider.evolve(state, e);
      events.push(e);
    }
    const readerFindsFree = phoneWindowOpensAt(stateOfLast(events), T0 + trueMs + reader, windowMs) === undefined;
    steps.push({ command, trueMs, emitted, fromLastEvent, untouched, readerFindsFree });
  }
  return { steps, events, state };
}

/** The window in force as the log tells it: the last one taken, and whether its holder gave it back. */
interface InForce {
  holder: string;
  atMs: number;
  trueMs: number;
  released: boolean;
}

/** Walks the steps with the window in force before and after each, read from the events alone. */
function audit(steps: readonly Step[], check: (step: Step, before: InForce | undefined, after: InForce | undefined) => void): void {
  let inForce: InForce | undefined;
  for (const step of steps) {
    const before = inForce;
    for (const e of step.emitted) {
      if (e.type === 'PhoneWindowTaken') inForce = { holder: e.data.holder, atMs: Date.parse(e.data.at), trueMs: step.trueMs, released: false };
      // Only its holder's word gives a submission window back: anyone else's leaves it in force.
      else if (inForce?.holder === e.data.holder) inForce = { ...inForce, released: true };
    }
    check(step, before, inForce);
  }
}

/** Windows taken while the one before, not given back, had begun less than 30 s before in true time. */
function overlaps(steps: readonly Step[]): { first: InForce; second: { holder: string; trueMs: number } }[] {
  const found: ReturnType<typeof overlaps> = [];
  audit(steps, (step, inForce) => {
    for (const e of step.emitted) {
      if (e.type !== 'PhoneWindowTaken' || !inForce || inForce.released) continue;
      if (step.trueMs - inForce.trueMs < WINDOW_MS) found.push({ first: inForce, second: { holder: e.data.holder, trueMs: step.trueMs } });
    }
  });
  return found;
}

const RUNS = 400;

describe('phone window under random takes and give-backs from skewed clocks (I8)', () => {
  it('I8: a window is taken only once the one before was given back or began 30 s before in true time; an API replica finds the phone free no sooner', () => {
    holds(
      script,
      (s, met) => {
        const { steps } = run(s);
        const early: unknown[] = [];
        audit(steps, (step, inForce, after) => {
          if (step.readerFindsFree && after && !after.released && step.trueMs - after.trueMs < WINDOW_MS) early.push({ readerFindsFreeAfter: step.command, window: after });
          if (inForce && !inForce.released && step.emitted.some((e) => e.type === 'PhoneWindowTaken')) {
            if (step.trueMs - inForce.trueMs < SHARED_WINDOW_MS) met('windows granted within the allowance of each other');
            if (Date.parse(step.command.at) - step.trueMs !== inForce.atMs - inForce.trueMs) met('windows granted by clocks that disagree');
          }
        });
        return [...overlaps(steps), ...early];
      },
      { numRuns: RUNS, mustMeet: ['windows granted within the allowance of each other', 'windows granted by clocks that disagree'] },
    );
  });

  it('the skew allowance is what keeps I8: dispatchers asking for the bare 30 s, with clocks a second apart, overlap', () => {
    const bare = fc.check(
      fc.property(script, (s) => overlaps(run(s, WINDOW_MS).steps).length === 0),
      { numRuns: RUNS },
    );
    expect(bare.failed).toBe(true);
  });

  it("a take appends nothing exactly while the window in force runs by the asker's clock, whoever asks; else it opens a window at the asked time", () => {
    holds(
      script,
      (s, met) => {
        const wrong: unknown[] = [];
        audit(run(s).steps, ({ command, emitted }, inForce) => {
          if (command.type !== 'TakePhoneWindow') return;
          const runs = inForce !== undefined && !inForce.released && Date.parse(command.at) < inForce.atMs + command.windowMs;
          const want = runs ? [] : [{ type: 'PhoneWindowTaken', data: { holder: command.holder, at: command.at } }];
          if (!isDeepStrictEqual(emitted, want)) wrong.push({ command, inForce, emitted });
          if (runs) met(inForce.holder === command.holder ? 'its holder asking again' : 'another holder asking');
        });
        return wrong;
      },
      { numRuns: RUNS, mustMeet: ['its holder asking again', 'another holder asking'] },
    );
  });

  it('only the holder of the window in force gives it back, once; the phone is then free at once, to anyone', () => {
    holds(
      script,
      (s, met) => {
        const wrong: unknown[] = [];
        audit(run(s).steps, ({ command, emitted, readerFindsFree }, inForce) => {
          if (command.type === 'ReleasePhoneWindow') {
            const mayGiveBack = inForce !== undefined && !inForce.released && inForce.holder === command.holder;
            const want = mayGiveBack ? [{ type: 'PhoneWindowReleased', data: { holder: command.holder, at: command.at } }] : [];
            if (!isDeepStrictEqual(emitted, want) || (mayGiveBack && !readerFindsFree)) wrong.push({ command, inForce, emitted, readerFindsFree });
            met(mayGiveBack ? 'a window given back' : 'a give-back that is not the asker\'s to make');
          } else if (inForce?.released) {
            if (emitted.length !== 1) wrong.push({ command, inForce, emitted });
            met('a take after a give-back');
          }
        });
        return wrong;
      },
      { numRuns: RUNS, mustMeet: ['a window given back', "a give-back that is not the asker's to make", 'a take after a give-back'] },
    );
  });

  it('only the last event matters: decided on the state of the last event alone, every command comes out the same', () => {
    holds(script, (s) => run(s).steps.filter((step) => !isDeepStrictEqual(step.emitted, step.fromLastEvent)), { numRuns: RUNS });
  });

  it('replay: the live state equals a fold of the stream from initialState, decide never writes to it, and every event is as stored', () => {
    holds(
      script,
      (s) => {
        const { steps, events, state } = run(s);
        const replayed = fold(phoneWindowDecider, events);
        const written = steps.filter((step) => !step.untouched).map((step) => ({ written: step.command }));
        const unstored = events.filter((e) => !isDeepStrictEqual(PhoneWindowEventSchema.safeParse(e).data, e));
        return [...written, ...unstored, ...(isDeepStrictEqual(replayed, state) ? [] : [{ live: state, replayed }])];
      },
      { numRuns: RUNS },
    );
  });
});
