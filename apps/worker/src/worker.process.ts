/**
 * One distributed worker: the delivery pipeline's consumers against
 * EventStoreDB and Kafka, the read models they look things up in kept in a
 * local SQLite file fed from EventStoreDB, and a small HTTP server for
 * probes and Prometheus. Instances share the Kafka consumer groups, so Kafka
 * splits the partitions (phones, accounts) between them. Of the instances
 * started with the relay, the one holding the relay lease in the log publishes
 * from it; the others stand by and take over when it stops renewing.
 */
import { hostname } from 'node:os';
import type Database from 'better-sqlite3';
import { busReadinessFields, type KafkaBusOptions, type MessageBus, openMessageBus } from '#bus';
import { createCarriers, providerNames, type Carriers } from '#carriers';
import { CommandRunner, type EventStore, openEventStore, SqliteSnapshotStore } from '#eventstore';
import { commandRunnerHooks, startProbeServer, startingMetrics, type Logger, type NexoMetrics } from '#observability';
import { defaultProjections, openLocalDb, Projector } from '#projections';
import { AesGcmCipher } from '#security';
import { lookupsOn } from './lookups.js';
import type { WorkerConfig } from './worker.config.js';
import { createWorkerMetrics, workerMetrics } from './worker.metrics.js';
import { receiptPublisher, startWorkers, type RunningWorkers, type WorkerOptions } from './workers.js';

export interface WorkerProcessOptions {
  /** Kafka client timings (tests against the mock cluster shorten them). */
  kafka?: Partial<KafkaBusOptions>;
  workers?: WorkerOptions;
}

export interface WorkerProcess {
  /** Where the probes and /metrics answer. */
  url: string;
  workers: RunningWorkers;
  stop(): Promise<void>;
}

/** Readiness waits this long for the store to answer (the bus bounds its own answer). */
const PROBE_TIMEOUT_MS = 2_000;
/** Projections further behind than this make the instance unready: its lookups would miss recent OTPs. */
const READY_LAG_SECONDS = 5;

function within<T>(ms: number, p: Promise<T>): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref())]);
}

export async function startWorkerProcess(config: WorkerConfig, logger: Logger, options: WorkerProcessOptions = {}): Promise<WorkerProcess> {
  const clock = () => new Date();
  let store: EventStore | undefined;
  let db: Database.Database | undefined;
  let projector: Projector | undefined;
  let bus: MessageBus | undefined;
  let carriers: Carriers | undefined;
  let workers: RunningWorkers | undefined;
  let metrics: NexoMetrics | undefined;

  async function readiness() {
    const [storeOk, busHealth] = await Promise.all([
      store ? within(PROBE_TIMEOUT_MS, store.headPosition()).then(() => true, () => false) : false,
      // Bounded by the bus itself (about a second with Kafka down); the workers' start is what puts them on it.
      bus && workers ? bus.health() : ({ ok: false, reason: 'starting' } as const),
    ]);
    const lagSeconds = projector?.lastLag().seconds ?? Number.POSITIVE_INFINITY;
    return {
      ok: storeOk && busHealth.ok && lagSeconds < READY_LAG_SECONDS,
      store: storeOk,
      ...busReadinessFields(busHealth),
      projection_lag_seconds: lagSeconds,
    };
  }

  // Probes answer from the first moment: a long projection catch-up is alive, only not ready.
  const starting = startingMetrics();
  const probes = await startProbeServer({ port: config.port, host: config.host, readiness, metrics: () => metrics ?? starting });
  const { url } = probes;

  const stop = async () => {
    await probes.close();
    await workers?.stop();
    await carriers?.close();
    await projector?.stop();
    await bus?.close();
    await store?.close();
    if (db?.open) db.close();
  };

  try {
    store = await openEventStore({ kind: 'esdb', url: config.esdbUrl });
    // FULL: parked dispatches, unmatched receipts and webhook rows exist nowhere else once their Kafka
    // offset is committed (in the embedded default the bus offsets share the file and roll back with them).
    db = openLocalDb(config.dbFile, { durable: true });
    projector = new Projector({
      store,
      db,
      projections: defaultProjections({ expiryMs: config.expiryMs }),
      onError: (error) => logger.error({ err: error }, 'projection failed; retrying from the checkpoint'),
    });
    // Before the catch-up, which replays the whole log in a new container: meanwhile /metrics shows
    // the projections' lag instead of answering 503 (Prometheus would count the target down).
    metrics = createWorkerMetrics({ db, projector, providers: providerNames(config.carriers), workers: () => workers });
    await projector.catchUp();
    projector.start();
    bus = await openMessageBus({
      kind: 'kafka',
      brokers: config.kafka.brokers,
      clientId: config.kafka.clientId,
      ssl: config.kafka.ssl,
      logger,
      onError: (error, group, topic) => logger.error({ err: error, group, topic }, 'consumer failed; retrying'),
      // A poison key's messages are held in this file (see the Kafka adapter's header for what that costs).
      holdIn: db,
      onHold: ({ error, ...where }) => logger.error({ err: error, ...where }, 'consumer holds a failing key aside; its other keys go on (runbook NexoBusMessagesHeld)'),
      ...options.kafka,
    });
    const publishReceipt = receiptPublisher({ bus });
    carriers = createCarriers(config.carriers, {
      sink: (receipt) => {
        metrics?.carrierReceipts.inc({ provider: receipt.provider, status: receipt.status });
        return publishReceipt(receipt);
      },
      logger,
    });
    workers = await startWorkers(
      {
        store,
        runner: new CommandRunner(store, { snapshots: new SqliteSnapshotStore(db), ...commandRunnerHooks(() => metrics, logger) }),
        bus,
        db,
        cipher: new AesGcmCipher(config.cipherKeys, config.cipherKeyId),
        carriers,
        logger,
        clock,
        expiryMs: config.expiryMs,
        metrics: workerMetrics(metrics, db, clock),
      },
      lookupsOn(db),
      {
        relay: config.relay,
        // Several instances may be started with the relay (a scaled service, a rolling update): one relays.
        relayLease: { holder: `${hostname()}:${process.pid}` },
        ...options.workers,
        dispatcher: { phoneWindowMs: config.phoneIntervalMs, sharedWindows: true, ...options.workers?.dispatcher },
        webhooks: { privateAddresses: config.webhookPrivateAddresses, ...options.workers?.webhooks },
      },
    );
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return { url, workers, stop };
}
