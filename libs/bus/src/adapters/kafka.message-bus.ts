/**
 * The distributed bus on Kafka, through kafkajs 2.2. kafkajs is looking for
 * maintainers (tulios/kafkajs#1603): nothing outside this file may import it,
 * so replacing it means rewriting one adapter against the same contract suite.
 *
 * Publishing: one idempotent producer (acks from all in-sync replicas, one
 * request in flight), so a retried send neither duplicates nor reorders a
 * partition. The key picks the partition (murmur2, as the Java client does),
 * which gives per-key order and one owner per key (per phone, per account).
 *
 * Consuming: one kafkajs consumer per `consume()` call, in the group named by
 * the caller. The handler gets one partition's messages at a time; an offset
 * is resolved and committed only after the handler resolves. When it rejects,
 * nothing is resolved, the partition waits out a backoff and the next fetch
 * starts again at the first unhandled message, so the same messages come back
 * without leaving the group (a rebalance per failure would stall every other
 * partition of the consumer).
 */
import type { ConnectionOptions } from 'node:tls';
import kafkajs from 'kafkajs';
import type {
  Admin,
  Consumer as KafkaConsumer,
  EachBatchPayload,
  IHeaders,
  Kafka as KafkaClient,
  KafkaMessage,
  LogEntry,
  Producer,
  RetryOptions,
  SASLOptions,
} from 'kafkajs';
import {
  type BatchHandler,
  BusError,
  type BusHealth,
  type ConsumedMessage,
  type Consumer,
  type ConsumeOptions,
  type MessageBus,
  type OutgoingMessage,
} from '../message-bus.port.js';

const { Kafka, Partitioners, logLevel } = kafkajs;

/** pino's call shape, so the service's logger can be passed as it is. */
export interface BusLogger {
  error(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

export interface KafkaBusOptions {
  brokers: string[];
  clientId?: string;
  ssl?: boolean | ConnectionOptions;
  sasl?: SASLOptions;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** kafkajs's retries of a failed request before the call fails (defaults: 5, from 300 ms, up to 30 s). */
  retry?: { retries?: number; initialRetryTimeMs?: number; maxRetryTimeMs?: number };
  /** Group membership timings; kafkajs's defaults (30 s, 3 s, 60 s) when absent. */
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  rebalanceTimeoutMs?: number;
  /** Longest a fetch waits on the broker for new messages: an idle consumer's latency. */
  maxWaitTimeMs?: number;
  /** Partitions a consumer handles at once; order holds within each. */
  partitionsConsumedConcurrently?: number;
  /** Backoff after a handler rejection, doubled per consecutive failure up to `maxRetryDelayMs`. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  onError?: (error: unknown, group: string, topic: string) => void;
  /** Longest `health()` waits for a broker's answer before saying the bus is not ready (default 800 ms). */
  healthTimeoutMs?: number;
  /** How long `health()` gives its last answer again before asking a broker anew (default 1 s). */
  healthCacheMs?: number;
  /** kafkajs's own log lines; dropped when absent (it would write to the console). */
  logger?: BusLogger;
}

const DEFAULT_BATCH_SIZE = 500;

/** kafkajs errors that it flags non-retriable but that mean "not reachable now", not "refused". */
const UNAVAILABLE = new Set(['KafkaJSTimeout', 'KafkaJSLockTimeout', 'KafkaJSGroupCoordinatorNotFound', 'KafkaJSNoBrokerAvailableError']);

/**
 * A kafkajs error as ours. kafkajs wraps the error that made it give up in
 * KafkaJSNumberOfRetriesExceeded (non-retriable by its own flag), so the
 * decision is taken on the innermost kafkajs error.
 */
export function toBusError(error: unknown, action: string): BusError {
  if (error instanceof BusError) return error;
  // kafkajs wraps the error that decides (a refused connection, a protocol error) in others
  // (KafkaJSNumberOfRetriesExceeded, KafkaJSNonRetriableError once a producer gave up): judge the innermost.
  let root = error;
  while (root instanceof Error && root.name.startsWith('KafkaJS') && root.cause instanceof Error) root = root.cause;
  const e = root instanceof Error ? root : new Error(String(root));
  const type = (e as { type?: unknown }).type;
  const detail = typeof type === 'string' ? `${type}: ${e.message}` : e.message;
  const unavailable = (e as { retriable?: unknown }).retriable === true || UNAVAILABLE.has(e.name);
  return new BusError(unavailable ? 'unavailable' : 'rejected', `kafka: ${action} failed: ${detail}`, { cause: error });
}

function text(value: Buffer | string | (Buffer | string)[] | undefined): string | undefined {
  // Kafka allows a header key more than once; the port has one value per key, and the last one wins as in the Java client's lastHeader().
  const one = Array.isArray(value) ? value[value.length - 1] : value;
  return one === undefined ? undefined : one.toString();
}

/**
 * A value that is not JSON fails like a handler: reported, retried, never
 * skipped. The relay is these topics' only writer, so it means a foreign
 * producer, and skipping would drop data without a trace.
 */
function decode<V>(topic: string, partition: number, m: KafkaMessage): ConsumedMessage<V> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries((m.headers ?? {}) as IHeaders)) {
    const s = text(v);
    if (s !== undefined) headers[k] = s;
  }
  let value: V;
  try {
    value = (m.value === null ? null : JSON.parse(m.value.toString('utf8'))) as V;
  } catch (error) {
    throw new BusError('rejected', `kafka: ${topic}[${partition}]@${m.offset} is not JSON`, { cause: error });
  }
  return { topic, partition, offset: m.offset, key: m.key?.toString('utf8') ?? '', value, headers };
}

function encode(topic: string, m: OutgoingMessage) {
  const value = JSON.stringify(m.value);
  if (value === undefined) throw new TypeError(`message for ${topic} (key ${m.key}): value is not JSON-serializable`);
  return { key: m.key, value, headers: m.headers };
}

const nextOffset = (offset: string) => (BigInt(offset) + 1n).toString();

export class KafkaMessageBus implements MessageBus {
  private readonly kafka: KafkaClient;
  private readonly probeKafka: KafkaClient;
  private probeAdmin: Promise<Admin> | undefined;
  private lastHealth: { at: number; answer: BusHealth } | undefined;
  private checking: Promise<BusHealth> | undefined;
  private producer: Promise<Producer> | undefined;
  private admin: Promise<Admin> | undefined;
  private readonly consumers = new Set<Consumer>();
  private closed = false;

  constructor(private readonly options: KafkaBusOptions) {
    this.kafka = this.client(
      options.retry && {
        retries: options.retry.retries,
        initialRetryTime: options.retry.initialRetryTimeMs,
        maxRetryTime: options.retry.maxRetryTimeMs,
      },
    );
    // health()'s own client: kafkajs retries inside every call (5 times, up to 30 s, by default), and a
    // probe must hear "down" at once; it has a connection of its own, so it never queues behind a fetch.
    this.probeKafka = this.client({ retries: 0 });
  }

  private client(retry: RetryOptions | undefined): KafkaClient {
    const { options } = this;
    const logger = options.logger;
    return new Kafka({
      brokers: options.brokers,
      clientId: options.clientId ?? 'nexo-route',
      ssl: options.ssl,
      sasl: options.sasl,
      connectionTimeout: options.connectionTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      retry,
      logLevel: logger ? logLevel.INFO : logLevel.NOTHING,
      logCreator: () => (entry: LogEntry) => {
        if (!logger) return;
        const { message, ...fields } = entry.log;
        const line = { ...fields, namespace: entry.namespace };
        if (entry.level === logLevel.ERROR) logger.error(line, message);
        else if (entry.level === logLevel.WARN) logger.warn(line, message);
        else if (entry.level === logLevel.INFO) logger.info(line, message);
        else logger.debug(line, message);
      },
    });
  }

  /** Makes and connects a client once; a failure is forgotten so the next call tries again. */
  private connected<T extends { connect(): Promise<void> }>(make: () => T, what: string, reset: () => void): Promise<T> {
    return Promise.resolve()
      .then(async () => {
        const client = make();
        await client.connect();
        return client;
      })
      .catch((error: unknown) => {
        reset();
        throw toBusError(error, `connecting the ${what}`);
      });
  }

  private getProducer(): Promise<Producer> {
    this.producer ??= this.connected(
      () =>
        this.kafka.producer({
          idempotent: true,
          maxInFlightRequests: 1,
          // Named, not defaulted: kafkajs warns about its v1 → v2 partitioner
          // change otherwise. This one is murmur2 like the Java client, so
          // other clients put a key on the same partition.
          createPartitioner: Partitioners.DefaultPartitioner,
        }),
      'producer',
      () => (this.producer = undefined),
    );
    return this.producer;
  }

  private getAdmin(): Promise<Admin> {
    this.admin ??= this.connected(() => this.kafka.admin(), 'admin client', () => (this.admin = undefined));
    return this.admin;
  }

  async publish(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (this.closed) throw new BusError('closed', 'bus is closed');
    if (messages.length === 0) return;
    const encoded = messages.map((m) => encode(topic, m));
    const producer = await this.getProducer();
    try {
      await producer.send({ topic, acks: -1, messages: encoded });
    } catch (error) {
      throw toBusError(error, `publishing ${messages.length} message(s) to ${topic}`);
    }
  }

  async consume<V>(group: string, topic: string, handler: BatchHandler<V>, options: ConsumeOptions = {}): Promise<Consumer> {
    if (this.closed) throw new BusError('closed', 'bus is closed');
    const o = this.options;
    const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    const heartbeatMs = o.heartbeatIntervalMs ?? 3_000;
    let running = true;
    const kc: KafkaConsumer = this.kafka.consumer({
      groupId: group,
      sessionTimeout: o.sessionTimeoutMs,
      heartbeatInterval: o.heartbeatIntervalMs,
      rebalanceTimeout: o.rebalanceTimeoutMs,
      maxWaitTimeInMs: o.maxWaitTimeMs,
      // kafkajs restarts a crashed consumer, even one whose crash lands after disconnect() (a broker
      // gone while the consumer was retrying): stopped, it would reconnect for ever. 5: kafkajs's default.
      retry: { retries: 5, restartOnFailure: async () => running },
    });

    const wakers = new Set<() => void>();
    const backoff = (ms: number) =>
      new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          wakers.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        wakers.add(done);
      });
    const failures = new Map<number, number>();

    const eachBatch = async ({ batch, resolveOffset, commitOffsetsIfNecessary, heartbeat, isRunning, isStale }: EachBatchPayload) => {
      const { partition } = batch;
      for (let i = 0; i < batch.messages.length; i += batchSize) {
        if (!running || !isRunning() || isStale()) return;
        const chunk = batch.messages.slice(i, i + batchSize);
        // kafkajs heartbeats only between batches: a handler slower than the
        // session timeout would otherwise get its partitions taken away mid-batch.
        const beat = setInterval(() => heartbeat().catch(() => undefined), heartbeatMs);
        try {
          await handler(chunk.map((m) => decode<V>(batch.topic, partition, m)));
        } catch (error) {
          o.onError?.(error, group, topic);
          const n = (failures.get(partition) ?? 0) + 1;
          failures.set(partition, n);
          await backoff(Math.min((o.retryDelayMs ?? 500) * 2 ** (n - 1), o.maxRetryDelayMs ?? 30_000));
          return;
        } finally {
          clearInterval(beat);
        }
        failures.delete(partition);
        const last = chunk[chunk.length - 1].offset;
        resolveOffset(last);
        // A failed commit escapes to kafkajs, which rejoins the group when the
        // cause is a rebalance; the batch then comes again to whoever owns the
        // partition, which at-least-once allows.
        await commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition, offset: nextOffset(last) }] }] });
      }
    };

    kc.on(kc.events.CRASH, (event) => o.onError?.(event.payload.error, group, topic));
    try {
      await kc.connect();
      // A new group reads what the topic still holds, as on the embedded bus.
      await kc.subscribe({ topics: [topic], fromBeginning: true });
      await kc.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: o.partitionsConsumedConcurrently ?? 1,
        eachBatch,
      });
    } catch (error) {
      await kc.disconnect().catch(() => undefined);
      throw toBusError(error, `starting group ${group} on ${topic}`);
    }
    if (this.closed) {
      // close() ran while this consumer was joining, and could not see it.
      await kc.disconnect().catch(() => undefined);
      throw new BusError('closed', 'bus is closed');
    }

    let stopping: Promise<void> | undefined;
    const consumer: Consumer = {
      lag: () => this.lag(group, topic),
      stop: () => {
        stopping ??= (async () => {
          running = false;
          for (const wake of [...wakers]) wake();
          // disconnect() waits for the batch in hand, whose commit then still goes out, and leaves the group.
          await kc.disconnect().catch((error: unknown) => o.onError?.(error, group, topic));
          this.consumers.delete(consumer);
        })();
        return stopping;
      },
    };
    this.consumers.add(consumer);
    return consumer;
  }

  /** Best effort: the end offsets and the group's commits are read in two requests, not one snapshot. */
  private async lag(group: string, topic: string): Promise<number> {
    try {
      const admin = await this.getAdmin();
      const [committed, ends] = await Promise.all([admin.fetchOffsets({ groupId: group, topics: [topic] }), admin.fetchTopicOffsets(topic)]);
      const done = new Map((committed.find((t) => t.topic === topic)?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
      let lag = 0n;
      for (const p of ends) {
        const c = done.get(p.partition) ?? -1n;
        // -1: nothing committed yet, so everything still held (from `low`) is pending.
        const from = c < 0n ? BigInt(p.low) : c;
        if (BigInt(p.high) > from) lag += BigInt(p.high) - from;
      }
      return Number(lag);
    } catch (error) {
      throw toBusError(error, `reading the lag of group ${group} on ${topic}`);
    }
  }

  /**
   * Asks a broker for the cluster's metadata, without kafkajs's retries. One
   * question at a time: probes that come while it is out wait for its answer
   * (at most `healthTimeoutMs`), and its answer serves the probes of the next
   * `healthCacheMs`. An answer later than the bound still lands in the cache.
   */
  async health(): Promise<BusHealth> {
    if (this.closed) return { ok: false, reason: 'bus is closed' };
    const timeoutMs = this.options.healthTimeoutMs ?? 800;
    if (this.lastHealth && Date.now() - this.lastHealth.at < (this.options.healthCacheMs ?? 1_000)) return this.lastHealth.answer;
    this.checking ??= this.askBroker().then((answer) => {
      this.lastHealth = { at: Date.now(), answer };
      this.checking = undefined;
      return answer;
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<BusHealth>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, reason: `kafka: no broker answered within ${timeoutMs} ms` }), timeoutMs);
    });
    try {
      return await Promise.race([this.checking, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async askBroker(): Promise<BusHealth> {
    try {
      this.probeAdmin ??= this.connected(() => this.probeKafka.admin(), 'probe client', () => (this.probeAdmin = undefined));
      const { brokers } = await (await this.probeAdmin).describeCluster();
      return brokers.length > 0 ? { ok: true } : { ok: false, reason: 'kafka: the cluster names no broker' };
    } catch (error) {
      // A connection that failed once is not trusted again: the next question connects afresh.
      const admin = this.probeAdmin;
      this.probeAdmin = undefined;
      void admin?.then((a) => a.disconnect()).catch(() => undefined);
      return { ok: false, reason: toBusError(error, 'asking for the cluster metadata').message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.consumers].map((c) => c.stop()));
    // Not waited for: a probe still connecting to a hung broker would hold close() for kafkajs's request timeout.
    void this.probeAdmin?.then((a) => a.disconnect()).catch(() => undefined);
    const clients = await Promise.allSettled([this.producer, this.admin].filter((p) => p !== undefined));
    await Promise.all(clients.map((c) => (c.status === 'fulfilled' ? c.value.disconnect().catch(() => undefined) : undefined)));
  }
}
