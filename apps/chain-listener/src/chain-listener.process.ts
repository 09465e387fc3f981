/**
 * One distributed chain-listener: the listener and the deposit consumer of
 * one chain against EventStoreDB and Kafka. Deposit addresses come from a
 * directory read model in a local SQLite file fed from EventStoreDB; the
 * cursor and the deposit watch live in the same file. Probes and Prometheus
 * on a small HTTP server.
 */
import type Database from 'better-sqlite3';
import { busReadinessFields, type KafkaBusOptions, type MessageBus, openMessageBus } from '#bus';
import { CommandRunner, type EventStore, openEventStore, SqliteSnapshotStore } from '#eventstore';
import { commandRunnerHooks, createMetrics, startProbeServer, type Logger, type NexoMetrics } from '#observability';
import { directoryProjection, openLocalDb, Projector } from '#projections';
import type { ChainListenerConfig } from './chain-listener.config.js';
import { type ChainServices, startChainServices } from './chain-services.js';
import { depositGroupOf } from './deposit.consumer.js';

export interface ChainListenerProcess {
  url: string;
  services: ChainServices;
  stop(): Promise<void>;
}

const PROBE_TIMEOUT_MS = 2_000;
const READY_LAG_SECONDS = 5;

function within<T>(ms: number, p: Promise<T>): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref())]);
}

export async function startChainListenerProcess(
  config: ChainListenerConfig,
  logger: Logger,
  options: { kafka?: Partial<KafkaBusOptions> } = {},
): Promise<ChainListenerProcess> {
  const { chain } = config;
  let store: EventStore | undefined;
  let db: Database.Database | undefined;
  let projector: Projector | undefined;
  let bus: MessageBus | undefined;
  let services: ChainServices | undefined;
  const metrics: NexoMetrics = createMetrics(undefined, { chains: [chain.slug], consumerGroups: [depositGroupOf(chain)], projections: ['directory'] });

  async function readiness() {
    const [storeOk, busHealth] = await Promise.all([
      store ? within(PROBE_TIMEOUT_MS, store.headPosition()).then(() => true, () => false) : false,
      // Bounded by the bus itself (about a second with Kafka down).
      bus ? bus.health() : ({ ok: false, reason: 'starting' } as const),
    ]);
    const listening = services?.ready() ?? false;
    const lagSeconds = projector?.lastLag().seconds ?? Number.POSITIVE_INFINITY;
    return {
      ok: storeOk && busHealth.ok && listening && lagSeconds < READY_LAG_SECONDS,
      store: storeOk,
      ...busReadinessFields(busHealth),
      chain: chain.slug,
      listening,
      last_error: services?.listeners[0]?.lastError ?? null,
      projection_lag_seconds: lagSeconds,
    };
  }

  const probes = await startProbeServer({ port: config.port, host: config.host, readiness, metrics: () => metrics });
  const { url } = probes;

  const stop = async () => {
    await probes.close();
    await services?.stop();
    await projector?.stop();
    await bus?.close();
    await store?.close();
    if (db?.open) db.close();
  };

  try {
    store = await openEventStore({ kind: 'esdb', url: config.esdbUrl });
    // The cursor and the watch are not rebuildable from the log: their commits wait for the disk.
    db = openLocalDb(config.dbFile, { durable: true });
    projector = new Projector({
      store,
      db,
      projections: [directoryProjection],
      onError: (error) => logger.error({ err: error }, 'projection failed; retrying from the checkpoint'),
    });
    await projector.catchUp();
    projector.start();
    bus = await openMessageBus({
      kind: 'kafka',
      brokers: config.kafka.brokers,
      clientId: config.kafka.clientId,
      ssl: config.kafka.ssl,
      logger,
      onError: (error, group, topic) => logger.error({ err: error, group, topic }, 'consumer failed; retrying'),
      ...options.kafka,
    });
    const p = projector;
    services = await startChainServices({
      chains: [chain],
      bus,
      runner: new CommandRunner(store, { snapshots: new SqliteSnapshotStore(db), ...commandRunnerHooks(() => metrics, logger) }),
      db,
      logger,
      metrics,
      caughtUp: () => p.waitUntilCaughtUp(5_000),
    });
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return { url, services, stop };
}
