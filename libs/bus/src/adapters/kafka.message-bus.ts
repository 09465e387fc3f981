/**
 * The distributed bus on Kafka, through kafkajs 2.2. kafkajs is looking for
 * maintainers (tulios/kafkajs#1603): nothing outside this adapter's files
 * (`kafka.*.ts`; its tests' support too) may import it, so replacing it means
 * rewriting one adapter against the same contract suite.
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
 *
 * A poison message (a key whose handler keeps failing, a value that is not
 * JSON) would stop every key of its partition that way. With `holdIn`, the
 * adapter holds keys aside as the embedded bus does, on the same decisions
 * (held-keys.ts): a chunk that fails `holdAfter` times in a row is handed over
 * again key by key, and the keys that still fail (a key with a value that is
 * not JSON at once), with every later message of theirs, are written to
 * `bus_kafka_held` with `synchronous = FULL`; only then is the offset committed
 * past them, so the other keys of the partition go on. Held keys are retried
 * on their own backoff, in order, by a loop beside the partitions; they count
 * in `lag()` and `held()`. When every key of a chunk fails, or one fails with
 * an outage error (`isOutage`: a chunk of one key is common here), it is an
 * outage: nothing is held and the partition waits, as without `holdIn`.
 *
 * Why a SQLite file of the consuming process and not a topic of held
 * messages: the hold must be durable before the commit, and each later message
 * of a held key must follow it. The worker's file gives both in one local
 * transaction and knows at once which keys are held; a topic would need a
 * produce per held message awaited before the commit, a consumer of its own,
 * and a way to rebuild the set of held keys (by reading that topic) after
 * every start and rebalance. The price, written down in the README ("What
 * this mode does not do yet"): held messages belong to the process that held
 * them. A worker's file is disposable in compose, so a recreated container
 * loses what it held (a restart keeps it); and after a rebalance the
 * partition's new owner does not know the key is held and handles its newer
 * messages while the old owner still retries the older ones, so a held key's
 * order holds only while the group is stable.
 */
import type { ConnectionOptions } from 'node:tls';
import type Database from 'better-sqlite3';
import kafkajs from 'kafkajs';
import type {
  Admin,
  Consumer as KafkaConsumer,
  EachBatchPayload,
  Kafka as KafkaClient,
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
import { attempting, type HoldOptions, isolateFailingKeys } from '../held-keys.js';
import { ConsumerHolds, decode, KafkaHeldStore, raw, type RawMessage } from './kafka.held-messages.js';

const { Kafka, Partitioners, logLevel } = kafkajs;

/** pino's call shape, so the service's logger can be passed as it is. */
export interface BusLogger {
  error(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

/** `holdIn`, `holdAfter`, `maxHoldRetryMs`, `onHold`: see the header. */
export interface KafkaBusOptions extends HoldOptions {
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
  /**
   * A SQLite connection of this process to hold a failing key's messages in (see the header);
   * without it a failing key blocks its partition until it goes through.
   */
  holdIn?: Database.Database;
  /** Longest `health()` waits for a broker's answer before saying the bus is not ready (default 800 ms). */
  healthTimeoutMs?: number;
  /** How long `health()` gives its last answer again before asking a broker anew (default 1 s). */
  healthCacheMs?: number;
  /** kafkajs's own log lines; dropped when absent (it would write to the console). */
  logger?: BusLogger;
}

const DEFAULT_BATCH_SIZE = 500;
/** Longest a readiness probe waits for a broker. */
const HEALTH_TIMEOUT_MS = 800;

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
  private readonly heldStore: KafkaHeldStore | undefined;

  constructor(private readonly options: KafkaBusOptions) {
    this.heldStore = options.holdIn && new KafkaHeldStore(options.holdIn);
    this.kafka = this.client(
      options.retry && {
        retries: options.retry.retries,
        initialRetryTime: options.retry.initialRetryTimeMs,
        maxRetryTime: options.retry.maxRetryTimeMs,
      },
    );
    // health()'s own client: kafkajs retries inside every call (5 times, up to 30 s, by default), and a
    // probe must hear "down" at once; it has a connection of its own, so it never queues behind a fetch.
    // Its requests time out with the probe: a broker hung mid-request would otherwise hold the one probe
    // in flight for kafkajs's 30 s, and readiness would stay false that long after the broker is back.
    this.probeKafka = this.client({ retries: 0 }, options.healthTimeoutMs ?? HEALTH_TIMEOUT_MS);
  }

  private client(retry: RetryOptions | undefined, requestTimeoutMs = this.options.requestTimeoutMs): KafkaClient {
    const { options } = this;
    const logger = options.logger;
    return new Kafka({
      brokers: options.brokers,
      clientId: options.clientId ?? 'nexo-route',
      ssl: options.ssl,
      sasl: options.sasl,
      connectionTimeout: options.connectionTimeoutMs,
      requestTimeout: requestTimeoutMs,
      retry,
      logLevel: logger ? logLevel.INFO : logLevel.NOTHING,
      logCreator: () => (entry: LogEntry) => {
        if (!logger) return;
        const { message, ...fields } = entry.log;
        const line = { ...fields, namespace: entry.namespace };
        // kafkajs logs each failed try of what it will try again at error level: a broker out of reach
        // for a minute is hundreds of error lines. They are warnings; when kafkajs gives up, the failure
        // reaches the caller (a publish, a consumer's crash), which logs it as the error.
        const retried = 'retryCount' in fields;
        if (entry.level === logLevel.ERROR && !retried) logger.error(line, message);
        else if (entry.level <= logLevel.WARN) logger.warn(line, message);
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
        // After stop(): disconnect() waits for this batch, so no backoff.
        if (!running) return resolve();
        const done = () => {
          clearTimeout(timer);
          wakers.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        wakers.add(done);
      });
    const failures = new Map<number, number>();
    const holdAfter = o.holdAfter ?? 3;
    const retryMs = o.retryDelayMs ?? 500;
    const holds = this.heldStore
      ? new ConsumerHolds<V>(this.heldStore, handler, (m) => decode<V>(topic, m), {
          group,
          topic,
          batchSize,
          retryMs,
          maxHoldRetryMs: o.maxHoldRetryMs ?? 60_000,
          onError: o.onError,
          onHold: o.onHold,
        })
      : undefined;
    const attempt = attempting(handler, (rows: ConsumedMessage<V>[]) => rows);

    /**
     * Hands a chunk over but for the messages behind a held key (`behind`). Returns the keys to
     * hold now with their errors (a value that is not JSON, or a key that failed alone), or
     * undefined when the chunk must come again after a backoff.
     */
    const handle = async (partition: number, chunk: readonly RawMessage[], behind: Set<RawMessage>): Promise<Map<string, unknown> | undefined> => {
      const failing = new Map<string, unknown>();
      let fresh: ConsumedMessage<V>[] = [];
      try {
        for (const m of chunk) {
          if (holds?.has(m.key)) behind.add(m);
          else if (!failing.has(m.key)) {
            try {
              fresh.push(decode<V>(topic, m));
            } catch (error) {
              if (!holds) throw error;
              o.onError?.(error, group, topic);
              failing.set(m.key, error);
            }
          }
        }
        if (failing.size > 0) fresh = fresh.filter((m) => !failing.has(m.key));
        if (fresh.length > 0) await handler(fresh);
      } catch (error) {
        o.onError?.(error, group, topic);
        const n = (failures.get(partition) ?? 0) + 1;
        failures.set(partition, n);
        const keys = holds && n >= holdAfter && running ? await isolateFailingKeys(fresh, attempt, () => running) : undefined;
        if (!keys) {
          await backoff(Math.min(retryMs * 2 ** (n - 1), o.maxRetryDelayMs ?? 30_000));
          return undefined;
        }
        for (const [key, e] of keys) failing.set(key, e);
      }
      failures.delete(partition);
      return failing;
    };

    const eachBatch = async ({ batch, resolveOffset, commitOffsetsIfNecessary, heartbeat, isRunning, isStale }: EachBatchPayload) => {
      for (let i = 0; i < batch.messages.length; i += batchSize) {
        if (!running || !isRunning() || isStale()) return;
        const chunk = batch.messages.slice(i, i + batchSize).map((m) => raw(batch.partition, m));
        const behind = new Set<RawMessage>();
        // kafkajs heartbeats only between batches: a handler slower than the
        // session timeout would otherwise get its partitions taken away mid-batch.
        const beat = setInterval(() => heartbeat().catch(() => undefined), heartbeatMs);
        let failing: Map<string, unknown> | undefined;
        try {
          failing = await handle(batch.partition, chunk, behind);
        } finally {
          clearInterval(beat);
        }
        if (!failing) return;
        const held = chunk.filter((m) => behind.has(m) || failing.has(m.key));
        if (holds && held.length > 0) {
          // The partition went to another member, which gets these messages again: holding them here too would run them twice.
          if (isStale()) return;
          try {
            holds.hold(held, failing);
          } catch (error) {
            o.onError?.(error, group, topic);
            await backoff(retryMs);
            return;
          }
        }
        const last = chunk[chunk.length - 1].offset;
        resolveOffset(last);
        // A failed commit escapes to kafkajs, which rejoins the group when the
        // cause is a rebalance; the batch then comes again to whoever owns the
        // partition, which at-least-once allows.
        await commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: nextOffset(last) }] }] });
      }
    };

    // The partitions of `topic` the group gave this member at its last (re)join; none while it
    // rejoins (after a crash, in a rebalance), when they may be another member's.
    let owned: ReadonlySet<number> = new Set();
    kc.on(kc.events.GROUP_JOIN, (event) => {
      owned = new Set(event.payload.memberAssignment[topic] ?? []);
    });
    kc.on(kc.events.REBALANCING, () => {
      owned = new Set();
    });
    kc.on(kc.events.CRASH, (event) => {
      owned = new Set();
      o.onError?.(event.payload.error, group, topic);
    });
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
    holds?.start();

    let stopping: Promise<void> | undefined;
    const consumer: Consumer = {
      // Over the partitions this member owns, so the members' figures add up to the group's lag
      // (the metric is summed over instances); plus this process's held messages, which the
      // offsets are committed past.
      lag: async () => (owned.size === 0 ? 0 : await this.lag(group, topic, owned)) + (holds?.count() ?? 0),
      held: async () => holds?.count() ?? 0,
      stop: () => {
        stopping ??= (async () => {
          running = false;
          for (const wake of [...wakers]) wake();
          // disconnect() waits for the batch in hand, whose commit then still goes out, and leaves the group.
          await Promise.all([kc.disconnect().catch((error: unknown) => o.onError?.(error, group, topic)), holds?.stop()]);
          this.consumers.delete(consumer);
        })();
        return stopping;
      },
    };
    this.consumers.add(consumer);
    return consumer;
  }

  /** Over `partitions`. Best effort: the end offsets and the group's commits are read in two requests, not one snapshot. */
  private async lag(group: string, topic: string, partitions: ReadonlySet<number>): Promise<number> {
    try {
      const admin = await this.getAdmin();
      const [committed, ends] = await Promise.all([admin.fetchOffsets({ groupId: group, topics: [topic] }), admin.fetchTopicOffsets(topic)]);
      const done = new Map((committed.find((t) => t.topic === topic)?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
      let lag = 0n;
      for (const p of ends) {
        if (!partitions.has(p.partition)) continue;
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
    const timeoutMs = this.options.healthTimeoutMs ?? HEALTH_TIMEOUT_MS;
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
