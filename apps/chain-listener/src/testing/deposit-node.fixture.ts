/**
 * The deposit side of one embedded node without HTTP: an SQLite event store,
 * the read models it needs, the in-process bus, a listener and a deposit
 * consumer on any ChainClient. `restart*` models a process restart on the
 * same file (new objects, same tables), to test what survives one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { HDNodeWallet, Mnemonic } from 'ethers';
import { InProcessMessageBus } from '#bus';
import type { ChainClient, ChainConfig } from '#chain';
import { type AccountEvent, accountDecider, accountStream } from '#domain';
import { CommandRunner, SqliteEventStore } from '#eventstore';
import { createLogger, createMetrics, linesInto, type Logger, type NexoMetrics } from '#observability';
import { depositsProjection, directoryProjection, listDeposits, moneyProjection, getBalance, Projector } from '#projections';
import { ChainListener, type ChainListenerOptions } from '../chain-listener.js';
import { type DepositConsumer, startDepositConsumer } from '../deposit.consumer.js';
import { depositAddressFor } from '../deposit-addresses.js';

export const TEST_XPUB = HDNodeWallet.fromMnemonic(
  Mnemonic.fromPhrase('test test test test test test test test test test test junk'),
  "m/44'/60'/0'/0",
).neuter().extendedKey;

export class DepositNode {
  readonly dir: string;
  readonly file: string;
  store!: SqliteEventStore;
  db!: Database.Database;
  runner!: CommandRunner;
  bus!: InProcessMessageBus;
  projector!: Projector;
  listener: ChainListener | undefined;
  consumer: DepositConsumer | undefined;
  readonly logs: string[] = [];
  readonly logger: Logger;
  readonly metrics: NexoMetrics;

  constructor(
    readonly chain: ChainConfig,
    readonly client: ChainClient,
    readonly listenerOptions: Partial<ChainListenerOptions> = {},
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'nexo-deposit-'));
    this.file = join(this.dir, 'nexo.db');
    const sink = linesInto(this.logs);
    this.logger = createLogger({ level: 'debug', destination: sink });
    this.metrics = createMetrics(undefined, { chains: [chain.slug] });
    this.#open();
  }

  #open(): void {
    this.store = SqliteEventStore.open(this.file);
    this.db = new Database(this.file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.runner = new CommandRunner(this.store);
    this.bus = new InProcessMessageBus(this.db, { pollIntervalMs: 20, retryDelayMs: 50 });
    this.projector = new Projector({ store: this.store, db: this.db, projections: [moneyProjection, directoryProjection, depositsProjection] });
  }

  async openAccount(accountId: string): Promise<string> {
    const at = new Date().toISOString();
    await this.runner.handle(accountStream(accountId), accountDecider, { type: 'OpenAccount', accountId, name: accountId, testCredits: 0, at });
    const { address } = await depositAddressFor({ runner: this.runner, xpub: TEST_XPUB, clock: () => new Date() }, accountId);
    await this.caughtUp();
    return address;
  }

  caughtUp = async (): Promise<void> => {
    await this.projector.catchUp();
  };

  newListener(): ChainListener {
    this.listener = new ChainListener({ chain: this.chain, client: this.client, bus: this.bus, db: this.db, logger: this.logger, ...this.listenerOptions });
    return this.listener;
  }

  async startConsumer(): Promise<DepositConsumer> {
    this.consumer = await startDepositConsumer({ chain: this.chain, bus: this.bus, runner: this.runner, db: this.db, logger: this.logger, metrics: this.metrics, caughtUp: this.caughtUp });
    return this.consumer;
  }

  /** Waits until the consumer has handled everything published. */
  async settled(timeoutMs = 5_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while ((await this.consumer!.lag()) > 0) {
      if (Date.now() > until) throw new Error('deposit consumer did not catch up');
      await new Promise((r) => setTimeout(r, 10));
    }
    await this.caughtUp();
  }

  balance(accountId: string): bigint {
    return getBalance(this.db, accountId)?.balance ?? 0n;
  }

  deposits(accountId: string) {
    return listDeposits(this.db, accountId);
  }

  async accountEvents(accountId: string): Promise<AccountEvent[]> {
    const out: AccountEvent[] = [];
    for await (const e of this.store.readStream(accountStream(accountId))) out.push({ type: e.type, data: e.data } as AccountEvent);
    return out;
  }

  /** Stops everything and opens the same file again, as a restarted process would. */
  async restart(): Promise<void> {
    await this.#close();
    this.listener = undefined;
    this.consumer = undefined;
    this.#open();
  }

  async #close(): Promise<void> {
    await this.listener?.stop();
    await this.consumer?.stop();
    await this.bus.close();
    await this.store.close();
    if (this.db.open) this.db.close();
  }

  async dispose(): Promise<void> {
    await this.#close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
