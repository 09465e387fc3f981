/**
 * The plain core the HTTP layer drives: event store, command path, cipher,
 * read models and limits. Built without Nest so workers, the CLI and tests can
 * use the same pieces; Nest only receives it as a value.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CommandRunner, type EventStore, SqliteEventStore } from '#eventstore';
import { AesGcmCipher, type Cipher } from '#security';
import type { Logger } from '#observability';
import type { AppConfig } from '../config.js';
import { PhoneLimiter, TokenBuckets } from '../http/rate-limiter.js';
import { HttpIdempotency } from './http-idempotency.js';
import type { ProjectionStatus, ReadModels } from './read-models.js';
import { startReadModels } from './projection-read-models.js';

export interface CoreMetrics {
  otpAccepted(carrier: string, channel: string): void;
}

export class Core {
  readonly revokedKeys = new Set<string>();
  readonly phoneLimiter: PhoneLimiter;
  readonly keyBuckets: TokenBuckets;
  readonly signupBuckets: TokenBuckets;
  readonly httpIdempotency: HttpIdempotency;
  metrics: CoreMetrics | undefined;

  constructor(
    readonly config: AppConfig,
    readonly logger: Logger,
    readonly store: EventStore,
    readonly runner: CommandRunner,
    readonly cipher: Cipher,
    readonly readDb: Database.Database,
    readonly reads: ReadModels,
    readonly projections: ProjectionStatus & { stop(): Promise<void> },
    readonly clock: () => Date = () => new Date(),
  ) {
    this.phoneLimiter = new PhoneLimiter(config.phoneIntervalMs);
    this.keyBuckets = new TokenBuckets(config.keyRatePerSecond / 1000, config.keyBurst);
    this.signupBuckets = new TokenBuckets(config.signupsPerHour / 3_600_000, config.signupsPerHour);
    this.httpIdempotency = new HttpIdempotency(readDb);
  }

  /** Read-your-writes: waits until the read models reflect everything appended before this call. */
  caughtUp(): Promise<void> {
    return this.projections.caughtUp(5_000);
  }

  async readiness(): Promise<{ ok: boolean; store: boolean; projection_lag_events: number; projection_lag_seconds: number }> {
    let store = true;
    try {
      await this.store.headPosition();
    } catch {
      store = false;
    }
    const lag = this.projections.lag();
    return { ok: store && lag.seconds < 5, store, projection_lag_events: lag.events, projection_lag_seconds: lag.seconds };
  }

  async close(): Promise<void> {
    await this.projections.stop();
    await this.store.close();
    if (this.readDb.open && this.readDb !== (this.store as Partial<SqliteEventStore>).db) this.readDb.close();
  }
}

export async function createCore(config: AppConfig, logger: Logger): Promise<Core> {
  let store: EventStore;
  let readDb: Database.Database;
  if (config.esdbUrl) {
    const { openEventStore } = await import('#eventstore');
    store = await openEventStore({ kind: 'esdb', url: config.esdbUrl });
    // With EventStoreDB the read models live in a local file fed from it.
    readDb = new Database(join(config.dataDir, 'read-models.db'));
    readDb.pragma('journal_mode = WAL');
    readDb.pragma('synchronous = NORMAL');
  } else {
    const sqlite = SqliteEventStore.open(config.dbFile);
    store = sqlite;
    readDb = sqlite.db;
  }
  const runner = new CommandRunner(store);
  const cipher = new AesGcmCipher(config.cipherKeys, config.cipherKeyId);
  const { reads, projections } = await startReadModels(store, readDb, logger);
  return new Core(config, logger, store, runner, cipher, readDb, reads, projections);
}
