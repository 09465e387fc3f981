/** Options of the SMPP adapter, and their defaults. */
import smpp from 'smpp';
import type { CarrierLogger, ReceiptSink } from '../carrier-gateway.port.js';

export type SmppLinkState = 'connecting' | 'bound' | 'disconnected' | 'closed';

export interface SmppCarrierGatewayOptions {
  provider: string;
  host: string;
  port: number;
  systemId: string;
  password: string;
  systemType?: string;
  /** Brandname (alphanumeric) or short code. */
  sourceAddr: string;
  /** Default: 5/0 (alphanumeric) when sourceAddr has letters, else 1/1. */
  sourceAddrTon?: number;
  sourceAddrNpi?: number;
  sink: ReceiptSink;
  /** Most submit_sm awaiting their response at once. Default 10. */
  window?: number;
  /** Default 30 000 ms; an unanswered enquire_link after `enquireLinkTimeoutMs` (10 000) drops the link. */
  enquireLinkMs?: number;
  enquireLinkTimeoutMs?: number;
  /** Connect + bind_transceiver answered within this, else retry. Default 10 000 ms. */
  bindTimeoutMs?: number;
  /** submit_sm written and unanswered this long → `timeout`. Default 10 000 ms. */
  responseTimeoutMs?: number;
  /** A submit not yet written after this long (unbound, throttled, queue) → `timeout`, never sent. Default 30 000 ms. */
  queueTimeoutMs?: number;
  /** Queued submits beyond this are refused with `queue_full`. Default 5 000. */
  maxQueue?: number;
  /**
   * Reconnect backoff. Default 500 ms doubling to 30 s, with jitter. It starts over only once a bind
   * has held `stableMs` (default 10 000 ms): an SMSC that accepts binds and drops them at once is
   * not reconnected to every half second forever.
   */
  reconnect?: { baseMs?: number; maxMs?: number; stableMs?: number };
  /** Pause after ESME_RTHROTTLED. Default 250 ms doubling to 5 s. */
  throttle?: { baseMs?: number; maxMs?: number };
  /** Message ids remembered to tie receipts to their OTP. Default 100 000. */
  trackMessages?: number;
  /** How long close() waits for outstanding responses. Default 2 000 ms. */
  closeGraceMs?: number;
  logger?: CarrierLogger;
  now?: () => number;
  onStateChange?: (state: SmppLinkState, detail: { attempt?: number; reconnectInMs?: number }) => void;
}

/** The options with every default applied. */
export type SmppSettings = SmppCarrierGatewayOptions &
  Required<
    Pick<
      SmppCarrierGatewayOptions,
      | 'sourceAddrTon'
      | 'sourceAddrNpi'
      | 'window'
      | 'enquireLinkMs'
      | 'enquireLinkTimeoutMs'
      | 'bindTimeoutMs'
      | 'responseTimeoutMs'
      | 'queueTimeoutMs'
      | 'maxQueue'
      | 'trackMessages'
      | 'closeGraceMs'
      | 'now'
    >
  >;

export function resolveSmppSettings(opts: SmppCarrierGatewayOptions): SmppSettings {
  const alpha = /[^0-9+]/.test(opts.sourceAddr);
  return {
    ...opts,
    sourceAddrTon: opts.sourceAddrTon ?? (alpha ? smpp.consts.TON.ALPHANUMERIC! : smpp.consts.TON.INTERNATIONAL!),
    sourceAddrNpi: opts.sourceAddrNpi ?? (alpha ? smpp.consts.NPI.UNKNOWN! : smpp.consts.NPI.ISDN!),
    window: Math.max(1, opts.window ?? 10),
    enquireLinkMs: opts.enquireLinkMs ?? 30_000,
    enquireLinkTimeoutMs: opts.enquireLinkTimeoutMs ?? 10_000,
    bindTimeoutMs: opts.bindTimeoutMs ?? 10_000,
    responseTimeoutMs: opts.responseTimeoutMs ?? 10_000,
    queueTimeoutMs: opts.queueTimeoutMs ?? 30_000,
    maxQueue: opts.maxQueue ?? 5_000,
    trackMessages: opts.trackMessages ?? 100_000,
    closeGraceMs: opts.closeGraceMs ?? 2_000,
    now: opts.now ?? Date.now,
  };
}
