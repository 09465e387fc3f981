/**
 * The deposit listener of one chain: polls `eth_getLogs` through the
 * LogScanner from a stored cursor, publishes each step to
 * `nexo.chain.transfers`, then saves the cursor. Provider push filters are
 * never used: they can stop silently after an RPC error and replay logs after
 * a reorg (REFERENCE.md), while a cursor over block ranges cannot skip.
 *
 * Outages: a failed step changes nothing; the loop waits with exponential
 * backoff and tries the same step again, so an RPC outage delays deposits and
 * loses none. A restart resumes from the saved cursor.
 *
 * Addresses assigned while a step runs. The scanner reads the head, then the
 * logs, with the address list it was given. A customer may get a new address
 * and pay to it after the list was read but before the head was: that block
 * is read without the new address. So when the list grows, the listener
 * reads again, for all addresses, the blocks it read in the last
 * `newAddressLookbackMs` (the last step at least). In the embedded default
 * the API answers with an address only after it is in the read model the
 * listener reads, so one step is enough; the lookback also covers a
 * distributed listener whose read model trails the API's.
 */
import type Database from 'better-sqlite3';
import { TOPICS, type MessageBus } from '#bus';
import {
  type ChainClient,
  type ChainConfig,
  ChainError,
  LogScanner,
  type ScanCursor,
  type ScanResult,
  backoffDelay,
  isRetryableChainError,
  scannerOptionsFor,
  startCursor,
  verifyTokenDecimals,
} from '#chain';
import type { Logger, NexoMetrics } from '#observability';
import { depositAddressesOnChain } from '#projections';
import { ScanCursorStore, rewindCursor } from './scan-cursor.store.js';
import { chainMessageKey, stepMessages } from './transfers.message.js';

/** Every EVM chain shares one deposit address per account. */
export const EVM_FAMILY = 'evm';

export interface ChainListenerOptions {
  chain: ChainConfig;
  client: ChainClient;
  bus: MessageBus;
  /** Holds the cursor table and the directory read model the addresses come from. */
  db: Database.Database;
  logger: Logger;
  metrics?: Pick<NexoMetrics, 'chainHeadBlock' | 'chainCursorBlock' | 'chainConfirmationsLagBlocks'>;
  clock?: () => Date;
  /** The addresses to watch; the directory's `evm` addresses by default. */
  addresses?: () => string[];
  /** How far back (in time) the blocks read are read again when new addresses appear. */
  newAddressLookbackMs?: number;
  /** Longest wait between retries of a failing step. */
  maxBackoffMs?: number;
}

interface ReadSpan {
  from: number;
  atMs: number;
}

export class ChainListener {
  readonly chain: ChainConfig;
  readonly #o: ChainListenerOptions;
  readonly #scanner: LogScanner;
  readonly #cursors: ScanCursorStore;
  readonly #clock: () => Date;
  readonly #log: Logger;
  #cursor: ScanCursor | undefined;
  #known: Set<string> | undefined;
  #spans: ReadSpan[] = [];
  #verified = false;
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #lastSuccessMs: number | undefined;
  #lastError: string | undefined;

  constructor(options: ChainListenerOptions) {
    this.#o = options;
    this.chain = options.chain;
    this.#scanner = new LogScanner(options.client, scannerOptionsFor(options.chain));
    this.#cursors = new ScanCursorStore(options.db);
    this.#clock = options.clock ?? (() => new Date());
    this.#log = options.logger.child({ chain: options.chain.slug, chainId: options.chain.chainId });
  }

  /** Reads every token's decimals() on chain; throws ChainError `decimals_mismatch` (the process must not start) or an outage. */
  async verify(): Promise<void> {
    await verifyTokenDecimals(this.#o.client, this.chain);
    this.#verified = true;
  }

  /**
   * `verify` for start-up: a mismatch throws; an RPC that does not answer
   * within `budgetMs` is logged and left to the loop, which verifies before
   * its first scan, so an unreachable node delays deposits without holding
   * up the service's start.
   */
  async verifyAtStart(budgetMs = 5_000): Promise<void> {
    const deadline = Date.now() + budgetMs;
    const attempts = (async (): Promise<'ok' | 'late'> => {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.verify();
          return 'ok';
        } catch (e) {
          if (!isRetryableChainError(e)) throw e;
          if (Date.now() >= deadline) return 'late';
          await sleep(Math.min(backoffDelay(attempt, { initialMs: 300, maxMs: 2_000 }), Math.max(0, deadline - Date.now())));
        }
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), budgetMs);
    });
    try {
      if ((await Promise.race([attempts, late])) === 'late') {
        // A late mismatch is caught by the loop's own verify, which logs it and does not scan.
        attempts.catch(() => undefined);
        this.#log.error({ budgetMs }, 'cannot read token decimals: RPC unavailable; the listener keeps trying and scans once they check out');
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Healthy: decimals checked and a step succeeded within a few poll intervals. */
  ready(): boolean {
    const last = this.#lastSuccessMs;
    return this.#verified && last !== undefined && this.#clock().getTime() - last < Math.max(30_000, 5 * this.chain.pollIntervalMs);
  }

  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Where the next step starts; loads the stored cursor (or starts one) on first use. */
  async cursor(): Promise<ScanCursor> {
    if (this.#cursor) return this.#cursor;
    const stored = this.#cursors.load(this.chain.chainId);
    if (stored) {
      // The addresses known when the last steps ran are unknown now: read those steps again with the full list.
      this.#cursor = rewindCursor(stored.cursor, stored.rescanFrom);
      this.#log.info({ nextBlock: this.#cursor.nextBlock, savedNextBlock: stored.cursor.nextBlock }, 'resuming from the stored cursor');
    } else {
      const start = this.chain.startBlock ?? (await this.#o.client.head());
      this.#cursor = startCursor(start);
      this.#log.info({ startBlock: start, configured: this.chain.startBlock !== undefined }, 'no stored cursor: starting a new one');
    }
    return this.#cursor;
  }

  /**
   * One scan step: read, publish, then save the cursor. Throws on a failure
   * (nothing published, cursor unchanged); the loop retries.
   */
  async step(): Promise<ScanResult> {
    const addresses = (this.#o.addresses ?? (() => depositAddressesOnChain(this.#o.db, EVM_FAMILY)))();
    let cursor = await this.cursor();
    const nowMs = this.#clock().getTime();
    if (this.#known && addresses.some((a) => !this.#known!.has(a))) {
      const from = this.#rescanFrom(nowMs);
      if (from !== undefined && from < cursor.nextBlock) {
        this.#log.debug({ from, to: cursor.nextBlock - 1 }, 'new deposit addresses: reading recent blocks again');
        cursor = rewindCursor(cursor, from);
      }
    }
    const step = await this.#scanner.step(cursor, addresses);
    const readFrom = step.reorgedBlocks.length > 0 ? Math.min(cursor.nextBlock, step.reorgedBlocks[0]!.number) : cursor.nextBlock;
    if (step.reorgedBlocks.length > 0) {
      this.#log.warn(
        { from: step.reorgedBlocks[0]!.number, to: step.reorgedBlocks[step.reorgedBlocks.length - 1]!.number, blocks: step.reorgedBlocks.length },
        'reorg: blocks read before are no longer canonical',
      );
    }
    const moved = step.newCursor.nextBlock !== cursor.nextBlock || step.reorgedBlocks.length > 0 || step.transfers.length > 0;
    if (step.newCursor.nextBlock > readFrom) this.#spans.push({ from: readFrom, atMs: nowMs });
    this.#prune(nowMs);
    if (moved) {
      await this.#o.bus.publish(
        TOPICS.chainTransfers,
        stepMessages(this.chain.chainId, step).map((value) => ({ key: chainMessageKey(this.chain.chainId), value })),
      );
    }
    const rescanFrom = this.#rescanFrom(nowMs) ?? step.newCursor.nextBlock;
    if (moved || this.#cursor !== cursor) this.#cursors.save(this.chain.chainId, this.chain.slug, { cursor: step.newCursor, rescanFrom }, this.#clock());
    this.#cursor = step.newCursor;
    this.#known = new Set(addresses);
    if (step.transfers.length > 0) this.#log.info({ transfers: step.transfers.length, to: step.newCursor.nextBlock - 1 }, 'deposit transfers published');

    const labels = { chain: this.chain.slug };
    this.#o.metrics?.chainHeadBlock.set(labels, step.head);
    this.#o.metrics?.chainCursorBlock.set(labels, step.newCursor.nextBlock - 1);
    this.#o.metrics?.chainConfirmationsLagBlocks.set(labels, Math.max(0, step.safeHead - (step.newCursor.nextBlock - 1)));
    return step;
  }

  /** Runs steps until stop(): at once while behind, every poll interval once caught up, with backoff on failures. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = (async () => {
      let failures = 0;
      while (this.#running) {
        let wait = this.chain.pollIntervalMs;
        try {
          if (!this.#verified) await this.verify();
          const step = await this.step();
          failures = 0;
          this.#lastSuccessMs = this.#clock().getTime();
          this.#lastError = undefined;
          if (!step.caughtUp) wait = 0;
        } catch (e) {
          failures++;
          wait = backoffDelay(failures, { initialMs: Math.min(500, this.chain.pollIntervalMs), maxMs: this.#o.maxBackoffMs ?? 30_000 });
          this.#lastError = e instanceof Error ? e.message : String(e);
          const fields = { err: e, attempt: failures, retryInMs: wait };
          // A refusal to go on (wrong chain, wrong decimals, a reorg deeper than the kept hashes) needs an operator; an outage does not.
          if (e instanceof ChainError && !e.retryable) this.#log.error({ ...fields, code: e.code }, 'chain listener cannot proceed; retrying');
          else this.#log.warn(fields, 'chain listener step failed; retrying from the same cursor');
        }
        if (wait > 0 && this.#running) await new Promise<void>((resolve) => {
          const timer = setTimeout(done, wait);
          function done(): void {
            clearTimeout(timer);
            resolve();
          }
          this.#wake = done;
        });
        else await new Promise<void>((resolve) => setImmediate(resolve));
        this.#wake = undefined;
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    this.#loop = undefined;
  }

  #rescanFrom(nowMs: number): number | undefined {
    const lookback = this.#o.newAddressLookbackMs ?? 60_000;
    const recent = this.#spans.filter((s, i) => i === this.#spans.length - 1 || nowMs - s.atMs <= lookback);
    return recent.length === 0 ? undefined : Math.min(...recent.map((s) => s.from));
  }

  #prune(nowMs: number): void {
    const lookback = this.#o.newAddressLookbackMs ?? 60_000;
    const keepFrom = this.#spans.findIndex((s, i) => i === this.#spans.length - 1 || nowMs - s.atMs <= lookback);
    if (keepFrom > 0) this.#spans.splice(0, keepFrom);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
