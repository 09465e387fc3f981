/**
 * The plain core the HTTP layer drives: event store, command path, cipher,
 * read models and limits. Built without Nest so workers, the CLI and tests can
 * use the same pieces; Nest only receives it as a value.
 */
import type Database from 'better-sqlite3';
import { busReadinessFields, InProcessMessageBus, openMessageBus, type MessageBus } from '#bus';
import { CarriersConfigSchema, createCarriers, PhoneLimiter, providerNames, routingOnly, type Carriers, type Receipt } from '#carriers';
import { CommandRunner, type EventStore, SqliteEventStore, SqliteSnapshotStore } from '#eventstore';
import { lookupsOn, receiptPublisher, restorePhoneWindows, startWorkers, WebhooksThread, workerMetrics, type RunningWorkers, type WorkerMetrics } from '#worker';
import { AesGcmCipher, type Cipher } from '#security';
import { commandRunnerHooks, type Logger } from '#observability';
import { openLocalDb, type ProjectionProgress } from '#projections';
import type { AppConfig } from '../config.js';
import { TokenBuckets } from '../http/rate-limiter.js';
import { RevokedKeys } from '../http/revoked-keys.js';
import { HttpIdempotency } from './http-idempotency.js';
import { FreeSendsPerPhone } from '../otp/free-sends.js';
import type { ProjectionStatus, ReadModels } from './read-models.js';
import { startReadModels } from './projection-read-models.js';
import { createProcessMetrics } from './metrics.js';
import type { NexoMetrics } from '#observability';
import { type ChainServices, startChainServices } from '../../../chain-listener/src/index.js';

export class Core {
  readonly revokedKeys: RevokedKeys;
  readonly phoneLimiter: PhoneLimiter;
  /** Channels with a configured route per carrier: `no_route` agrees with the routing table. */
  readonly channels: ReturnType<Carriers['routing']['channelsByCarrier']>;
  readonly keyBuckets: TokenBuckets;
  readonly signupBuckets: TokenBuckets;
  readonly httpIdempotency: HttpIdempotency;
  /**
   * Whether a send also reads the phone's window in the log (see `phoneWindowInLogOpensAt`): with
   * the workers elsewhere on EventStoreDB, where several API replicas and dispatchers share the log.
   */
  readonly phoneWindowsInLog: boolean;
  readonly freeSends: FreeSendsPerPhone;
  metrics!: NexoMetrics;
  private pipeline: WorkerMetrics | undefined;

  constructor(
    readonly config: AppConfig,
    readonly logger: Logger,
    readonly store: EventStore,
    readonly runner: CommandRunner,
    readonly cipher: Cipher,
    readonly readDb: Database.Database,
    readonly reads: ReadModels,
    readonly projections: ProjectionStatus & { projector: ProjectionProgress; stop(): Promise<void> },
    readonly bus: MessageBus,
    readonly carriers: Carriers,
    /**
     * Where every carrier receipt enters, from an adapter (SMPP, simulator) or the HTTP callback
     * endpoint: counted in `nexo_carrier_receipts_total`, then on the bus (durable once it resolves).
     */
    readonly receiveReceipt: (receipt: Receipt) => Promise<void>,
    readonly clock: () => Date = () => new Date(),
  ) {
    this.phoneLimiter = new PhoneLimiter({ windowMs: Math.max(1, config.phoneIntervalMs) });
    this.phoneWindowsInLog = config.workers === 'off' && config.esdbUrl !== undefined;
    this.freeSends = new FreeSendsPerPhone(config.freeSendsPerPhonePerDay, () => clock().getTime());
    this.channels = carriers.routing.channelsByCarrier();
    this.keyBuckets = new TokenBuckets(config.keyRatePerSecond / 1000, config.keyBurst);
    this.revokedKeys = new RevokedKeys((keyHash) => reads.apiKey(keyHash)?.revoked === true);
    this.signupBuckets = new TokenBuckets(config.signupsPerHour / 3_600_000, config.signupsPerHour);
    // API replicas sharing EventStoreDB share the claims too; the embedded default has one process.
    this.httpIdempotency = new HttpIdempotency(readDb, cipher, () => clock().getTime(), config.esdbUrl !== undefined ? store : undefined);
  }

  /**
   * The pipeline's metric hooks on this process's registry. A settlement counts where it is
   * appended: the settlement worker, or the feedback endpoint (`via="feedback"`).
   */
  get pipelineMetrics(): WorkerMetrics {
    return (this.pipeline ??= workerMetrics(this.metrics, this.readDb, this.clock));
  }

  /** Read-your-writes: waits until the read models reflect everything appended before this call. */
  caughtUp(): Promise<void> {
    return this.projections.caughtUp(5_000);
  }

  /**
   * The bus answers within its own bound (about a second with Kafka down, see MessageBus.health), asked
   * beside the store, so a probe stays quick; `bus_error` says why the bus is not ready. It decides
   * readiness only where the delivery pipeline runs in this process: an API beside distributed workers
   * uses Kafka only to pass on carrier receipts (which then fail with a 500 the upstream retries),
   * and taking every replica out of rotation for that would stop every send too.
   */
  async readiness(): Promise<{ ok: boolean; store: boolean; bus: boolean; bus_error?: string; projection_lag_events: number; projection_lag_seconds: number }> {
    const [store, bus] = await Promise.all([
      this.store.headPosition().then(
        () => true,
        () => false,
      ),
      this.bus.health(),
    ]);
    const lag = this.projections.lag();
    // A webhook thread that died sends nothing more: this instance is not fit to serve.
    const webhooks = this.webhookThread?.healthy() ?? true;
    return {
      ok: store && (bus.ok || this.workers === undefined) && webhooks && lag.seconds < 5,
      store,
      ...busReadinessFields(bus),
      projection_lag_events: lag.events,
      projection_lag_seconds: lag.seconds,
    };
  }

  workers: RunningWorkers | undefined;
  /** The webhook sender's thread, when the pipeline runs here on the SQLite log. */
  webhookThread: WebhooksThread | undefined;
  /** Deposit listeners and consumers, when chains are configured (embedded default). */
  chainServices: ChainServices | undefined;

  /** Shared secrets of the HTTP upstreams, by provider name, for their receipt callbacks. */
  receiptSecrets(): ReadonlyMap<string, string> {
    const parsed = CarriersConfigSchema.parse(this.config.carriers);
    return new Map(parsed.providers.flatMap((p) => (p.kind === 'http' ? [[p.name, p.secret] as const] : [])));
  }

  /**
   * Starts the delivery pipeline in this process (the embedded default). On the SQLite log the
   * webhook sender runs on a thread of its own (see WebhooksThread); the other consumers here.
   */
  async startWorkers(): Promise<void> {
    const metrics = this.pipelineMetrics;
    const { config } = this;
    this.webhookThread =
      this.store instanceof SqliteEventStore && !config.kafkaBrokers
        ? await WebhooksThread.start({
            logFile: config.dbFile,
            readModelsFile: config.readModelsFile,
            webhooksFile: config.webhooksFile,
            cipherKeys: Object.fromEntries(Object.entries(config.cipherKeys).map(([id, key]) => [id, Uint8Array.from(key)])),
            cipherKeyId: config.cipherKeyId,
            logLevel: config.logLevel,
            logger: this.logger,
            metrics,
            onRestart: () => this.metrics.threadRestarts.inc({ thread: 'nexo-webhooks' }),
            options: { privateAddresses: config.webhookPrivateAddresses },
          })
        : undefined;
    if (this.webhookThread) this.metrics.threadRestarts.inc({ thread: 'nexo-webhooks' }, 0);
    const deps = {
      store: this.store,
      runner: this.runner,
      bus: this.bus,
      db: this.readDb,
      cipher: this.cipher,
      carriers: this.carriers,
      logger: this.logger,
      clock: this.clock,
      expiryMs: config.expiryMs,
      metrics,
    };
    this.workers = await startWorkers(deps, lookupsOn(this.readDb), {
      // The upstream's per-phone rule, as the API checks it.
      dispatcher: { phoneWindowMs: this.phoneLimiter.windowLengthMs },
      webhookSender: this.webhookThread,
      // Settlement runs here too: a delivering receipt settles without waiting for the relay. Not with
      // Kafka, where settlement is partitioned by account among workers (one writer per account stream).
      settleOnReceipt: !config.kafkaBrokers,
      webhooks: { privateAddresses: config.webhookPrivateAddresses },
    });
    // The windows the dispatcher submitted in before a restart: a send to such a phone is 429, not parked.
    restorePhoneWindows(this.readDb, this.phoneLimiter);
  }

  /** Upstream first: workers stop feeding the store, then projections, bus and store close. */
  async close(): Promise<void> {
    const step = async (what: string, run: () => Promise<void> | void) => {
      this.logger.debug({ step: what }, 'closing');
      await run();
    };
    this.revokedKeys.stop();
    await step('chain listeners', () => this.chainServices?.stop());
    await step('delivery workers', () => this.workers?.stop());
    await step('carriers', () => this.carriers.close());
    await step('projections', () => this.projections.stop());
    await step('bus', () => this.bus.close());
    await step('event store', () => this.store.close());
    if (this.readDb.open) this.readDb.close();
  }
}

export async function createCore(config: AppConfig, logger: Logger): Promise<Core> {
  let store: EventStore;
  let readDb: Database.Database;
  // The store exists before the registry (which needs the projections): its hook reads it late.
  const metricsRef: { current?: NexoMetrics } = {};
  if (config.esdbUrl) {
    const { openEventStore } = await import('#eventstore');
    store = await openEventStore({ kind: 'esdb', url: config.esdbUrl });
    // With EventStoreDB the read models live in a local file fed from it.
    readDb = openLocalDb(config.readModelsFile);
  } else {
    store = SqliteEventStore.open(config.dbFile, {
      // Reads here are the log's tail (relay) and recent streams (command path, dispatcher).
      cacheKib: 4 * 1024,
      onCommit: ({ appends, seconds }) => {
        metricsRef.current?.eventstoreBatchAppends.observe(appends);
        metricsRef.current?.eventstoreAppendSeconds.observe(seconds);
      },
      onWriterRestart: (death) => {
        logger.error({ err: death }, 'the log writer thread stopped; started it again for the next write (the writes it had in hand answered 503)');
        metricsRef.current?.threadRestarts.inc({ thread: 'nexo-log-writer' });
      },
    });
    // Three files, one writer each (SQLite has one write lock per file, and a writer that waits for
    // it sleeps): the log (its writer thread), the read models (the projector thread; attached to
    // readDb for reading) and this thread's state (in-process bus, worker tables, idempotency).
    readDb = openLocalDb(config.stateFile);
  }
  // Snapshots of long streams' states (a busy account's) in this process's local file: a cache.
  const runner = new CommandRunner(store, { snapshots: new SqliteSnapshotStore(readDb), ...commandRunnerHooks(() => metricsRef.current, logger) });
  const cipher = new AesGcmCipher(config.cipherKeys, config.cipherKeyId);
  const { reads, projections } = await startReadModels(store, readDb, logger, {
    expiryMs: config.expiryMs,
    ...(config.esdbUrl ? {} : { thread: { logFile: config.dbFile, readModelsFile: config.readModelsFile } }),
    onThreadRestart: () => metricsRef.current?.threadRestarts.inc({ thread: 'nexo-projector' }),
  });
  const bus = config.kafkaBrokers
    ? await openMessageBus({ kind: 'kafka', brokers: config.kafkaBrokers, clientId: 'nexo-api' })
    : new InProcessMessageBus(readDb, {
        onError: (error, group, topic) => logger.error({ err: error, group, topic }, 'consumer failed; retrying'),
        // Keys are phone hashes, account ids and provider message ids: no secret.
        onHold: ({ error, ...where }) => logger.error({ err: error, ...where }, 'consumer holds a failing key aside; its other keys go on (runbook NexoBusMessagesHeld)'),
      });
  // Recorded at once by the receipts worker while it runs here (no bus row, no wait for its batch in
  // progress); through the bus before it starts, after it stops, and when it cannot record one.
  let running: Core | undefined;
  const publishReceipt = receiptPublisher({ bus }, () => running?.workers?.takeReceipt);
  const receiveReceipt = (receipt: Receipt): Promise<void> => {
    metricsRef.current?.carrierReceipts.inc({ provider: receipt.provider, status: receipt.status });
    return publishReceipt(receipt);
  };
  // Without the pipeline here, nothing is submitted from this process: no gateway (no SMPP bind) is opened.
  const carriers = config.workers === 'embedded' ? createCarriers(config.carriers, { sink: receiveReceipt, logger }) : routingOnly(config.carriers);
  const core = new Core(config, logger, store, runner, cipher, readDb, reads, projections, bus, carriers, receiveReceipt);
  running = core;
  core.metrics = createProcessMetrics({
    db: readDb,
    projector: projections.projector,
    providers: providerNames(config.carriers),
    workers: () => core.workers,
    clock: core.clock,
  });
  metricsRef.current = core.metrics;
  // Each thread's series from the start, at 0: an alert on its increase then sees the first restart.
  if (!config.esdbUrl) for (const thread of ['nexo-log-writer', 'nexo-projector'] as const) core.metrics.threadRestarts.inc({ thread }, 0);
  if (config.workers === 'embedded') {
    try {
      await core.startWorkers();
    } catch (error) {
      // Its store, projector and bus would otherwise keep the process (or a test) alive.
      await core.close().catch(() => undefined);
      throw error;
    }
  }
  // Only where a chain takes deposits: with none, no deposit address is ever handed out.
  if (config.depositXpubGenerated && config.chains.length > 0) {
    logger.warn(
      { dataDir: config.dataDir },
      'NEXO_DEPOSIT_XPUB is not set: deposit addresses derive from a development xpub generated into secrets.json whose private key was never kept; funds sent to them are unrecoverable. Set NEXO_DEPOSIT_XPUB in production.',
    );
  }
  if (config.workers === 'embedded' && config.chains.length > 0) {
    try {
      core.chainServices = await startChainServices({
        chains: config.chains,
        bus,
        runner,
        db: readDb,
        logger,
        clock: core.clock,
        metrics: core.metrics,
        caughtUp: () => core.caughtUp(),
      });
    } catch (error) {
      await core.close().catch(() => undefined);
      throw error;
    }
  }
  return core;
}
