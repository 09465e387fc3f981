/**
 * The MessageBus port: topics of keyed JSON messages, consumed by named groups
 * with per-key order and explicit commit. Delivery is at least once: a
 * consumer commits only after its effect is durable, so after a crash it sees
 * the uncommitted messages again and must be idempotent.
 */
export const TOPICS = {
  dispatch: 'nexo.otp.dispatch',
  receipts: 'nexo.otp.receipts',
  settlement: 'nexo.settlement',
  webhooks: 'nexo.webhooks',
  chainTransfers: 'nexo.chain.transfers',
} as const;
export type Topic = (typeof TOPICS)[keyof typeof TOPICS];

export interface OutgoingMessage {
  /** Messages with the same key are delivered to one consumer, in publish order. */
  key: string;
  value: unknown;
  headers?: Record<string, string>;
}

export interface ConsumedMessage<V = unknown> {
  topic: string;
  key: string;
  value: V;
  headers: Record<string, string>;
  /** Position within the topic (or partition); increases in publish order per key. */
  offset: string;
  partition: number;
}

export interface ConsumeOptions {
  /** Largest batch handed to the handler at once. */
  batchSize?: number;
}

/**
 * Handles a batch; resolve only once every effect is durable, then the batch
 * is committed. A rejection commits nothing and the batch comes again after a backoff.
 */
export type BatchHandler<V = unknown> = (messages: ConsumedMessage<V>[]) => Promise<void>;

export interface Consumer {
  /** Messages published but not yet committed by this group. */
  lag(): Promise<number>;
  /** Messages set aside because their key's handler kept failing (poison messages: see held-keys.ts); part of `lag()`. */
  held?(): Promise<number>;
  stop(): Promise<void>;
}

/** Whether the bus can take and hand out messages now; `reason` says why not. */
export type BusHealth = { ok: true } | { ok: false; reason: string };

export interface MessageBus {
  /** Resolves once the messages are durable on the bus. */
  publish(topic: string, messages: readonly OutgoingMessage[]): Promise<void>;
  consume<V = unknown>(group: string, topic: string, handler: BatchHandler<V>, options?: ConsumeOptions): Promise<Consumer>;
  /**
   * For readiness probes, so cheap that each probe may call it: resolves
   * within about a second whatever the broker does, and never rejects.
   */
  health(): Promise<BusHealth>;
  close(): Promise<void>;
}

/** A readiness body's bus fields, as every process's `/health/ready` shows them. */
export const busReadinessFields = (health: BusHealth): { bus: boolean; bus_error?: string } => (health.ok ? { bus: true } : { bus: false, bus_error: health.reason });

/** The embedded buses' answer: they live in this process (and its files), so they are ready until closed. */
export const embeddedBusHealth = (closed: boolean): BusHealth => (closed ? { ok: false, reason: 'bus is closed' } : { ok: true });

export const MESSAGE_BUS = Symbol('MessageBus');

/**
 * Why the bus refused a call. `unavailable`: the broker or the file could not
 * be reached in time, trying again later may work; `rejected`: the request
 * itself was refused (authorization, size, bad topic), trying again will not
 * help; `closed`: this bus was closed.
 */
export type BusErrorCode = 'unavailable' | 'rejected' | 'closed';

export class BusError extends Error {
  constructor(
    readonly code: BusErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BusError';
  }

  get retriable(): boolean {
    return this.code === 'unavailable';
  }
}
