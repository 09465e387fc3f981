/**
 * EventStoreDB values and errors in the port's terms, and back. The position
 * mapping (commit position as the port's bigint, `{ commit: p, prepare: p }`
 * going back) is explained in esdb.event-store.ts.
 */
import {
  type AllStreamResolvedEvent,
  ANY,
  type AppendExpectedRevision,
  ErrorType,
  jsonEvent,
  type JSONType,
  NO_STREAM,
  type ResolvedEvent,
  STREAM_EXISTS,
  type StreamingRead,
} from '@eventstore/db-client';
import { ConcurrencyError, type EventData, type ExpectedRevision, type RecordedEvent, StoreUnavailableError } from '../event-store.port.js';

export type AnyResolved = ResolvedEvent | AllStreamResolvedEvent;
export type Proposed = ReturnType<typeof jsonEvent>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Offsets the server uses for "no position" (ulong max, -1 as unsigned) sit above this. */
const NO_POSITION_ABOVE = 2n ** 63n;

const UNAVAILABLE = new Set<unknown>([
  ErrorType.UNAVAILABLE,
  ErrorType.DEADLINE_EXCEEDED,
  ErrorType.TIMEOUT,
  ErrorType.NOT_LEADER,
  ErrorType.CANCELLED,
]);
/** gRPC status codes of a vendor error that reached us unconverted: CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE. */
const UNAVAILABLE_CODES = new Set<unknown>([1, 4, 14]);
/** Failures before a request could go out: no node found, no connection. */
const NOT_SENT = /Failed to discover|No connection established/;

export function closedError(): StoreUnavailableError {
  return new StoreUnavailableError('event store is closed');
}

/** The stream revision a vendor error reports, or undefined when the stream does not exist. */
export function toActualRevision(value: unknown): bigint | undefined {
  let n: bigint | undefined;
  if (typeof value === 'bigint') n = value;
  else if (typeof value === 'number' && Number.isInteger(value)) n = BigInt(value);
  else if (typeof value === 'string' && /^-?\d+$/.test(value)) n = BigInt(value);
  return n === undefined || n < 0n ? undefined : n;
}

export function toExpectedRevision(expected: ExpectedRevision): AppendExpectedRevision {
  switch (expected) {
    case 'no_stream':
      return NO_STREAM;
    case 'any':
      return ANY;
    case 'stream_exists':
      return STREAM_EXISTS;
    default:
      return expected;
  }
}

/** Vendor errors become the port's; anything else (a bug, a refused argument) passes through unchanged. */
export function translateError(error: unknown, append?: { streamId: string; expected: ExpectedRevision }): unknown {
  if (error instanceof ConcurrencyError || error instanceof StoreUnavailableError || !(error instanceof Error)) return error;
  const { type, code } = error as { type?: unknown; code?: unknown };
  if (type === ErrorType.WRONG_EXPECTED_VERSION && append) {
    return new ConcurrencyError(append.streamId, append.expected, toActualRevision((error as { actualVersion?: unknown }).actualVersion));
  }
  const notSent = NOT_SENT.test(error.message);
  if (UNAVAILABLE.has(type) || UNAVAILABLE_CODES.has(code) || notSent) {
    // An append that failed once it had gone out (a deadline, a dropped connection) may have been written.
    return new StoreUnavailableError(`EventStoreDB unavailable: ${error.message}`, { cause: error, written: append && !notSent ? 'unknown' : 'no' });
  }
  return error;
}

export function isStreamNotFound(error: unknown): boolean {
  return error instanceof Error && (error as { type?: unknown }).type === ErrorType.STREAM_NOT_FOUND;
}

export function isSystem(e: { type: string; streamId: string }): boolean {
  return e.type.startsWith('$') || e.streamId.startsWith('$');
}

export function validPosition(p: bigint | undefined): p is bigint {
  return p !== undefined && p > 0n && p < NO_POSITION_ABOVE;
}

export function positionOf(resolved: AnyResolved): bigint | undefined {
  const fromEvent = resolved.event?.position?.commit;
  if (validPosition(fromEvent)) return fromEvent;
  return validPosition(resolved.commitPosition) ? resolved.commitPosition : undefined;
}

export function toServerPosition(p: bigint): { commit: bigint; prepare: bigint } {
  return { commit: p, prepare: p };
}

export function toRecorded(resolved: AnyResolved): RecordedEvent | undefined {
  const e = resolved.event;
  if (!e) return undefined;
  const position = positionOf(resolved);
  if (position === undefined) {
    throw new Error(`EventStoreDB sent ${e.streamId}@${e.revision} without a log position (EventStoreDB 22.6 or later is required)`);
  }
  const metadata = e.metadata;
  return {
    streamId: e.streamId,
    revision: e.revision,
    position,
    id: e.id,
    type: e.type,
    data: e.data,
    metadata: metadata !== null && typeof metadata === 'object' && !(metadata instanceof Uint8Array) ? (metadata as Record<string, unknown>) : undefined,
    created: e.created.toISOString(),
  };
}

export function toProposed(e: EventData): Proposed {
  // Checked here because the client serializes inside an async Promise
  // executor after the call has opened: a throw there never settles the append.
  if (JSON.stringify(e.data) === undefined) throw new TypeError(`event ${e.type}: data is not JSON-serializable`);
  // $-types are the server's own; reads and subscriptions leave them out, so such an event would vanish.
  if (e.type.startsWith('$')) throw new TypeError(`event type ${e.type}: $-prefixed types are reserved by EventStoreDB`);
  if (e.metadata !== undefined) JSON.stringify(e.metadata);
  if (e.id !== undefined && !UUID.test(e.id)) throw new TypeError(`event ${e.type}: EventStoreDB event ids are UUIDs, got "${e.id}"`);
  return jsonEvent({ type: e.type, data: e.data as JSONType, metadata: e.metadata, id: e.id });
}

/** Iterates a client read, translating its errors and cancelling the call if the consumer stops early. */
export async function* resolvedOf<T extends AnyResolved>(read: StreamingRead<T>): AsyncGenerator<T> {
  let settled = false;
  try {
    for await (const resolved of read) yield resolved;
    settled = true;
  } catch (error) {
    settled = true;
    throw translateError(error);
  } finally {
    if (!settled) read.cancel().catch(() => undefined);
  }
}
