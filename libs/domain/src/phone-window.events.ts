/**
 * Events of the `phone-window-<phoneHash>` stream: the upstream's rule of one
 * submission per phone per 30 s (I8) when more than one dispatcher can reach a
 * phone (the distributed mode, where a Kafka rebalance or a recreated worker
 * hands a phone to an owner that never saw its last submission). The stream is
 * the arbiter: each window is taken by an append at the exact expected
 * revision, so two dispatchers can never both take an open window. The
 * embedded default has one dispatcher and keeps its windows in its own file.
 *
 * The holder names what took the window, `<otpId>/<attempt>`; the phone hash
 * is the peppered one already on `OtpRequested`, never the number.
 */
import { z } from 'zod';
import { IsoTime } from './schema.js';

const Holder = z.string().min(1).max(80).regex(/^[A-Za-z0-9_-]+\/\d{1,4}$/);

export const PhoneWindowTaken = z.object({
  type: z.literal('PhoneWindowTaken'),
  data: z.object({ holder: Holder, at: IsoTime }).strict(),
});

/** The holder's submission provably never reached an upstream: the phone may be tried again at once. */
export const PhoneWindowReleased = z.object({
  type: z.literal('PhoneWindowReleased'),
  data: z.object({ holder: Holder, at: IsoTime }).strict(),
});

export const PhoneWindowEvent = z.discriminatedUnion('type', [PhoneWindowTaken, PhoneWindowReleased]);
export type PhoneWindowEvent = z.infer<typeof PhoneWindowEvent>;
export const PHONE_WINDOW_EVENT_TYPES = PhoneWindowEvent.options.map((o) => o.shape.type.value);

export const phoneWindowStream = (phoneHash: string): string => `phone-window-${phoneHash}`;
export const phoneWindowHolder = (otpId: string, attempt: number): string => `${otpId}/${attempt}`;
