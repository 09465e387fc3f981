/**
 * One phone's submission window (I8) as a decider. Only the last event
 * matters: the window taken last, and whether its holder gave it back. The
 * window's length comes with the command (it is configuration), and so does
 * the time, from the dispatcher's clock.
 */
import type { Decider } from './decider.js';
import type { PhoneWindowEvent } from './phone-window.events.js';

export type PhoneWindowCommand =
  | { type: 'TakePhoneWindow'; holder: string; at: string; windowMs: number }
  | { type: 'ReleasePhoneWindow'; holder: string; at: string };

export interface PhoneWindowState {
  holder: string | undefined;
  /** When the last window was taken (ms since the epoch); undefined when none was. */
  sinceMs: number | undefined;
  released: boolean;
}

/**
 * Added to the interval for windows taken in the log: the clock skew tolerated between the
 * processes that take them (distributed dispatchers) and read them (API replicas).
 */
export const PHONE_WINDOW_SKEW_MS = 1_000;

export function initialPhoneWindowState(): PhoneWindowState {
  return { holder: undefined, sinceMs: undefined, released: false };
}

/** When the phone's window opens again, or undefined when it is open now. */
export function phoneWindowOpensAt(state: PhoneWindowState, atMs: number, windowMs: number): number | undefined {
  if (state.sinceMs === undefined || state.released) return undefined;
  const opens = state.sinceMs + windowMs;
  return atMs < opens ? opens : undefined;
}

/**
 * Taking a window that is still running appends nothing, whoever holds it: a
 * holder asking again is a redelivered dispatch that cannot know whether its
 * first submission left, so it waits like anyone else.
 */
export function decidePhoneWindow(cmd: PhoneWindowCommand, state: PhoneWindowState): PhoneWindowEvent[] {
  switch (cmd.type) {
    case 'TakePhoneWindow':
      if (phoneWindowOpensAt(state, Date.parse(cmd.at), cmd.windowMs) !== undefined) return [];
      return [{ type: 'PhoneWindowTaken', data: { holder: cmd.holder, at: cmd.at } }];
    case 'ReleasePhoneWindow':
      // Only the holder of the window in force gives it back; a later holder's window is not touched.
      if (state.released || state.holder !== cmd.holder) return [];
      return [{ type: 'PhoneWindowReleased', data: { holder: cmd.holder, at: cmd.at } }];
  }
}

export function evolvePhoneWindow(state: PhoneWindowState, event: PhoneWindowEvent): PhoneWindowState {
  if (event.type === 'PhoneWindowTaken') {
    state.holder = event.data.holder;
    state.sinceMs = Date.parse(event.data.at);
    state.released = false;
  } else if (event.data.holder === state.holder) {
    state.released = true;
  }
  return state;
}

export const phoneWindowDecider: Decider<PhoneWindowCommand, PhoneWindowEvent, PhoneWindowState> = {
  decide: decidePhoneWindow,
  evolve: evolvePhoneWindow,
  initialState: initialPhoneWindowState,
};
