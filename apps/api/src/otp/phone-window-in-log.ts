/**
 * The per-phone rule across API replicas (the distributed mode). Each
 * replica's own limiter sees only the sends it accepted, so a send to a phone
 * that another replica's customer had sent to seconds before would be
 * accepted, charged, and then held by the dispatcher until the phone's window
 * ends. The distributed dispatchers take each window in the log
 * (`phone-window-<hash>`, see the phone-window decider), so the replica reads
 * the stream's last event (one round trip per send: only the latest window,
 * taken or given back, matters) and answers 429 with the time left. A send
 * another replica accepted but no dispatcher has submitted yet (milliseconds)
 * is not in the log: the dispatcher, the arbiter of I8, parks that one.
 */
import { initialPhoneWindowState, PHONE_WINDOW_SKEW_MS, phoneWindowDecider, type PhoneWindowEvent, phoneWindowOpensAt, phoneWindowStream } from '#domain';
import type { EventStore } from '#eventstore';

/** When the phone's window in the log ends (ms since the epoch), or undefined when it is free. */
export async function phoneWindowInLogOpensAt(store: Pick<EventStore, 'lastEvent'>, phoneHash: string, nowMs: number, windowMs: number): Promise<number | undefined> {
  const last = await store.lastEvent(phoneWindowStream(phoneHash));
  if (last === undefined) return undefined;
  const state = phoneWindowDecider.evolve(initialPhoneWindowState(), { type: last.type, data: last.data } as PhoneWindowEvent);
  return phoneWindowOpensAt(state, nowMs, windowMs + PHONE_WINDOW_SKEW_MS);
}
