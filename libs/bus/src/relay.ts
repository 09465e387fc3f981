/**
 * The relay: the only writer of the integration topics. It follows the event
 * log from its checkpoint and publishes what each event means to the outside
 * (dispatch an OTP, settle it, tell the customer), then advances the
 * checkpoint. Nothing is lost between the log and the bus: after a crash it
 * republishes from the checkpoint, and consumers are idempotent. On the
 * embedded bus, when it shares the checkpoint's connection, the messages and
 * the checkpoint commit in one transaction, so nothing is published twice
 * either; on any other bus a crash between publish and checkpoint republishes
 * at most the page in flight.
 */
import type Database from 'better-sqlite3';
import type { EventStore, RecordedEvent, Subscription } from '#eventstore';
import type { MessageBus, OutgoingMessage } from './message-bus.port.js';
import { InProcessMessageBus } from './adapters/in-process.message-bus.js';

export interface Publication {
  topic: string;
  message: OutgoingMessage;
}

export type RelayRoute = (event: RecordedEvent) => Publication[];

export interface RelayOptions {
  name?: string;
  batchSize?: number;
  /** Delay before a page the bus refused is tried again, and before resubscribing after a read error. */
  retryDelayMs?: number;
  onError?: (error: unknown) => void;
  /**
   * After a page smaller than `batchSize`, wait this long before reading the next: the events
   * committed meanwhile then go as one page (one transaction, one wake-up of the consumers)
   * instead of one per commit of the log. For a relay whose consumers can take the latency. A
   * function is asked after each page.
   */
  gatherMs?: number | (() => number);
  /** Called after each published page with the position reached. */
  onProgress?: (position: bigint) => void;
  /**
   * For a consumer that finishes some of a page's work after accepting it (the webhook thread's
   * sender posts first and records only what it must retry): the first log position whose effect
   * is not durable yet, or undefined when all is. The saved checkpoint stays below it, so a crash
   * relays that event again; `saveCheckpoint` moves it on once the consumer has caught up.
   */
  heldFrom?: () => bigint | undefined;
}

export class Relay {
  private subscription: Subscription | undefined;
  private loop: Promise<void> | undefined;
  private position = 0n;
  /** The position last written to the checkpoint table (behind `position` while a consumer holds it back). */
  private saved = 0n;
  private running = false;
  private wakeRetry: (() => void) | undefined;
  private readonly name: string;
  private readonly load: Database.Statement<[string], { position: bigint }>;
  private readonly save: Database.Statement<[string, bigint]>;

  constructor(
    private readonly store: EventStore,
    private readonly bus: MessageBus,
    /** Where the checkpoint lives (the service's SQLite file). */
    private readonly db: Database.Database,
    private readonly route: RelayRoute,
    private readonly options: RelayOptions = {},
  ) {
    this.name = options.name ?? 'relay';
    db.exec('CREATE TABLE IF NOT EXISTS relay_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID');
    // Positions are bigints end to end: EventStoreDB's are byte offsets in the
    // log and need not fit a double.
    this.load = db.prepare<[string], { position: bigint }>('SELECT position FROM relay_checkpoints WHERE name = ?').safeIntegers(true);
    this.save = db.prepare('INSERT INTO relay_checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position');
  }

  get checkpoint(): bigint {
    return this.position;
  }

  /** From its checkpoint, or from `floor` when that is later (where another instance's relay got to). */
  start(floor = 0n): void {
    if (this.running) throw new Error(`relay ${this.name} is already running`);
    this.running = true;
    const saved = BigInt(this.load.get(this.name)?.position ?? 0n);
    this.saved = saved;
    this.position = saved > floor ? saved : floor;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const sub = this.store.subscribe({ fromPosition: this.position, batchSize: this.options.batchSize ?? 1_000 });
      this.subscription = sub;
      try {
        const batchSize = this.options.batchSize ?? 1_000;
        const gatherOption = this.options.gatherMs ?? 0;
        for await (const page of sub) {
          if (!(await this.publishUntilDone(page))) break;
          // After a short page, gather (if asked to). Otherwise still give the event loop a turn:
          // catching up, pages follow each other as microtasks, and the thread's I/O (HTTP answers,
          // a status request) would wait until the relay reached the head.
          const gatherMs = typeof gatherOption === 'number' ? gatherOption : gatherOption();
          const gather = gatherMs > 0 && page.length < batchSize && this.running;
          await new Promise((r) => (gather ? setTimeout(r, gatherMs) : setImmediate(r)));
        }
        // The subscription ends when it is closed (stop) or when the store closes.
        return;
      } catch (error) {
        // A read failed: resubscribe from the checkpoint, which covers
        // everything published so far. A rejection escaping here would be
        // unhandled until stop(), and kill the process.
        this.options.onError?.(error);
        await sub.close().catch(() => undefined);
        await this.pause();
      }
    }
  }

  /** Publishes the page, retrying while the bus refuses it; false when stopped first. */
  private async publishUntilDone(page: RecordedEvent[]): Promise<boolean> {
    for (;;) {
      try {
        await this.publishPage(page);
        return true;
      } catch (error) {
        // The bus is down: keep the page and try again; the checkpoint has not moved.
        this.options.onError?.(error);
        if (!this.running) return false;
        await this.pause();
        if (!this.running) return false;
      }
    }
  }

  private pause(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.wakeRetry?.(), this.options.retryDelayMs ?? 500);
      this.wakeRetry = () => {
        clearTimeout(timer);
        this.wakeRetry = undefined;
        resolve();
      };
    });
  }

  private async publishPage(page: RecordedEvent[]): Promise<void> {
    if (page.length === 0) return;
    const byTopic = new Map<string, OutgoingMessage[]>();
    for (const e of page) {
      for (const p of this.route(e)) {
        const list = byTopic.get(p.topic) ?? [];
        list.push(p.message);
        byTopic.set(p.topic, list);
      }
    }
    const last = page[page.length - 1].position;
    const bus = this.bus;
    if (bus instanceof InProcessMessageBus && bus.sharesConnection(this.db)) {
      const at = this.checkpointFor(last);
      this.db.transaction(() => {
        for (const [topic, messages] of byTopic) bus.publishInTransaction(topic, messages);
        if (at !== undefined) this.save.run(this.name, at);
      })();
      if (at !== undefined) this.saved = at;
    } else {
      for (const [topic, messages] of byTopic) await bus.publish(topic, messages);
      this.saveUpTo(last);
    }
    this.position = last;
    this.options.onProgress?.(last);
  }

  /** Where the checkpoint may go once `published` is: there, or below what a consumer still holds (`heldFrom`); undefined if that is no move. */
  private checkpointFor(published: bigint): bigint | undefined {
    const held = this.options.heldFrom?.();
    const at = held !== undefined && held <= published ? held - 1n : published;
    return at > this.saved ? at : undefined;
  }

  private saveUpTo(published: bigint): void {
    const at = this.checkpointFor(published);
    if (at === undefined) return;
    this.save.run(this.name, at);
    this.saved = at;
  }

  /** Saves the checkpoint again, as far as the consumers now allow (see `heldFrom`); also after `stop`. */
  saveCheckpoint(): void {
    this.saveUpTo(this.position);
  }

  /** The position the checkpoint table holds: where a restart would relay from. */
  get savedCheckpoint(): bigint {
    return this.saved;
  }

  /** Finishes the page in flight (unless the bus is refusing it) and stops. */
  async stop(): Promise<void> {
    this.running = false;
    this.wakeRetry?.();
    await this.subscription?.close();
    await this.loop;
  }
}
