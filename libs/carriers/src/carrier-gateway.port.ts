/**
 * The CarrierGateway port: hand one OTP to an upstream (SMS or voice) and learn
 * its fate later. `submit` only says "the upstream took it"; whether it reached
 * the handset arrives as a Receipt, asynchronously, through the ReceiptSink the
 * adapter was given (or, for HTTP aggregators, on our callback endpoint).
 */
import type { Carrier, ReceiptStatus } from '#domain';

interface SubmitBase {
  otpId: string;
  /** 1-based attempt number of this OTP (the `attempt` of Routed/RouteFailed). */
  attempt: number;
  /** `+84912345678`. Adapters never log it whole. */
  phoneE164: string;
  carrier: Carrier;
  /** The code's digits; voice providers that synthesize speech themselves need them. */
  digits: string;
}

export type SmsSubmit = SubmitBase & { channel: 'sms'; text: string };
export type VoiceSubmit = SubmitBase & { channel: 'voice'; speech: string };
export type SubmitRequest = SmsSubmit | VoiceSubmit;

export interface SubmitResult {
  providerMessageId: string;
}

/** A delivery receipt, normalized. Adapters deliver each at least once: duplicates are normal. */
export interface Receipt {
  provider: string;
  /** As the upstream returned it from submit, so it matches `Routed.providerMessageId`. */
  providerMessageId: string;
  status: ReceiptStatus;
  /** The upstream's own words (≤ 1000 chars), scrubbed of message text, codes and phone numbers. */
  raw: string;
  /** When we received it (ISO-8601 UTC). */
  at: string;
  /** Known when the adapter still remembers the submission or the upstream echoes our reference. */
  otpId?: string;
  attempt?: number;
}

/**
 * Where adapters hand receipts. The promise matters: SMPP answers `deliver_sm`
 * only once it resolves, and asks the SMSC to redeliver when it rejects, so a
 * receipt is never acknowledged upstream before it is safe on our side.
 */
export type ReceiptSink = (receipt: Receipt) => void | Promise<void>;

export interface CarrierGateway {
  /** Provider name as used in the routing table and in Routed/RouteFailed. */
  readonly provider: string;
  /** Resolves once the upstream accepted the message; throws CarrierError otherwise. */
  submit(request: SubmitRequest): Promise<SubmitResult>;
  /** Stops accepting work, fails what is pending with `closed`, and releases every socket and timer. */
  close(): Promise<void>;
}

/**
 * Stable error codes. `timeout` and `connection_lost` are ambiguous: the
 * upstream may have taken the message, so failing over may send it twice
 * (`CarrierError.ambiguous`; detail `not_sent` marks one that never left).
 * So is `invalid_response` to an accepted submit (a 2xx or ESME_ROK whose
 * message id cannot be read).
 */
export type CarrierErrorCode =
  | 'timeout'
  | 'connection_lost'
  | 'network'
  | 'unavailable'
  | 'throttled'
  | 'queue_full'
  | 'rejected'
  | 'unauthorized'
  | 'invalid_request'
  | 'no_route'
  | 'unsupported_channel'
  | 'invalid_response'
  | 'closed';

export class CarrierError extends Error {
  constructor(
    readonly provider: string,
    readonly code: CarrierErrorCode,
    /** True when another try (failover to the next provider) may succeed. */
    readonly retryable: boolean,
    message: string = code,
    /** Upstream detail, e.g. `http_503` or `ESME_RINVDSTADR`; safe to store in RouteFailed.error. */
    readonly detail?: string,
    /** Set when the upstream said when to come back (HTTP 429 Retry-After). */
    readonly retryAfterMs?: number,
    /**
     * The upstream may have taken the message: this try timed out or lost its connection after the
     * request left, or an earlier try of the same submit did. The phone's window is then kept (I8).
     */
    readonly ambiguous: boolean = (code === 'timeout' || code === 'connection_lost') && detail !== 'not_sent',
  ) {
    super(message);
    this.name = 'CarrierError';
  }

  /** The same error, marked ambiguous (an earlier try of the submit may have reached the upstream). */
  asAmbiguous(): CarrierError {
    if (this.ambiguous) return this;
    return new CarrierError(this.provider, this.code, this.retryable, this.message, this.detail, this.retryAfterMs, true);
  }
}

/** pino-compatible: `logger.info({ otpId }, 'routed')`. Never pass a full phone number or a code. */
export interface CarrierLogger {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

const noop = (): void => undefined;
export const silentLogger: CarrierLogger = { info: noop, warn: noop, error: noop };

/**
 * Whether a line about `key` may be logged now: at most once per `everyMs` per key (bounded). For
 * what an upstream may send on every receipt, such as a status word we do not know.
 */
export function logThrottle(everyMs = 60_000, maxKeys = 1_000): (key: string, nowMs?: number) => boolean {
  const last = new Map<string, number>();
  return (key, nowMs = Date.now()) => {
    const at = last.get(key);
    if (at !== undefined && nowMs - at < everyMs) return false;
    if (last.size >= maxKeys) last.clear();
    last.set(key, nowMs);
    return true;
  };
}

