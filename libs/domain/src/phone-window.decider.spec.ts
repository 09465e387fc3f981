import { phoneWindowDecider, type PhoneWindowCommand } from './phone-window.decider.js';
import { PhoneWindowEvent as PhoneWindowEventSchema, phoneWindowHolder, type PhoneWindowEvent } from './phone-window.events.js';
import { givenWhenThen } from './testing/given-when-then.js';

const given = givenWhenThen(phoneWindowDecider);
const WINDOW = 30_000;
const at = (s: number) => new Date(Date.UTC(2026, 10, 26, 12, 0, 0) + s * 1_000).toISOString();
const A = phoneWindowHolder('otp_a', 1);
const B = phoneWindowHolder('otp_b', 1);
const take = (holder: string, s: number): PhoneWindowCommand => ({ type: 'TakePhoneWindow', holder, at: at(s), windowMs: WINDOW });
const release = (holder: string, s: number): PhoneWindowCommand => ({ type: 'ReleasePhoneWindow', holder, at: at(s) });
const taken = (holder: string, s: number): PhoneWindowEvent => ({ type: 'PhoneWindowTaken', data: { holder, at: at(s) } });
const released = (holder: string, s: number): PhoneWindowEvent => ({ type: 'PhoneWindowReleased', data: { holder, at: at(s) } });

describe('a phone window: one submission per phone per window, whoever dispatches (I8)', () => {
  it('gives a phone nobody sent to its window', () => {
    const state = given([]).when(take(A, 0)).then([taken(A, 0)]);
    expect(state).toMatchObject({ holder: A, sinceMs: Date.parse(at(0)), released: false });
  });

  it('refuses a second holder while the window runs, by appending nothing', () => {
    given([taken(A, 0)]).when(take(B, 29.999)).then([]);
  });

  it('refuses the same holder asking again: a redelivered dispatch cannot know whether its submission left', () => {
    given([taken(A, 0)]).when(take(A, 5)).then([]);
  });

  it('opens again once the window has run its full length', () => {
    given([taken(A, 0)]).when(take(B, 30)).then([taken(B, 30)]);
  });

  it('opens at once when its holder gives it back (a submission that never reached an upstream)', () => {
    given([taken(A, 0)]).when(release(A, 1)).then([released(A, 1)]);
    given([taken(A, 0), released(A, 1)]).when(take(B, 2)).then([taken(B, 2)]);
  });

  it('lets only the holder of the window in force give it back, and only once', () => {
    given([taken(A, 0), released(A, 1), taken(B, 2)]).when(release(A, 3)).then([]);
    given([taken(A, 0), released(A, 1)]).when(release(A, 3)).then([]);
    given([]).when(release(A, 3)).then([]);
  });

  it('builds events that pass the stored schema', () => {
    for (const e of [taken(A, 0), released(A, 1)]) expect(PhoneWindowEventSchema.parse(e)).toEqual(e);
    expect(PhoneWindowEventSchema.safeParse(taken('otp a/1', 0)).success).toBe(false);
  });
});
