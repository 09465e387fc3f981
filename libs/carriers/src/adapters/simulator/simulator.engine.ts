/**
 * The simulator's core, shared by its three faces: decides each message's
 * fate from a seeded PRNG and fires its receipt(s) on timers. No I/O.
 */
import type { Carrier, Channel, ReceiptStatus } from '#domain';
import { STATUS_TO_STAT } from '../../delivery-receipt.codec.js';
import { latencyFor, parseSimulatorConfig, type SimulatorConfig, type SimulatorConfigInput } from './simulator.config.js';

/** mulberry32: tiny, fast, good enough for fault injection; not for secrets. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Token bucket on the real clock: throttling is about our submit rate, not the simulated latency. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly perSecond: number,
    private readonly now: () => number,
  ) {
    this.tokens = perSecond;
    this.last = now();
  }
  take(): boolean {
    if (this.perSecond <= 0) return true;
    const t = this.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((t - this.last) * this.perSecond) / 1000);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface SimReceipt {
  messageId: string;
  status: ReceiptStatus;
  /** The upstream's word for it (DELIVRD, NOANSWER, ...). */
  stat: string;
  submittedAt: Date;
  doneAt: Date;
  /** True for the second copy of a duplicated receipt. */
  duplicate: boolean;
}

export type Admission = 'ok' | 'throttled' | 'error' | 'no_route';

/** Granularity of the simulator's receipt timers (ms). */
const SLOT_MS = 10;

export class SimulatorEngine {
  readonly config: SimulatorConfig;
  private readonly random: () => number;
  private readonly bucket: TokenBucket;
  /** Delays shorter than a slot: a timer each. */
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Longer delays by the slot (of SLOT_MS, on the monotonic clock) they fall due in. */
  private readonly slots = new Map<number, (() => void)[]>();
  private slotted = 0;
  private nextSlot = 0;
  private ticker: NodeJS.Timeout | undefined;
  private readonly idPrefix: string;
  private counter = 0;

  constructor(
    config: SimulatorConfigInput | SimulatorConfig = {},
    private readonly now: () => number = Date.now,
  ) {
    this.config = parseSimulatorConfig(config);
    this.random = seededRandom(this.config.seed);
    this.bucket = new TokenBucket(this.config.maxSubmitsPerSecond, now);
    this.idPrefix = Math.floor(this.random() * 0xffffff).toString(16).padStart(6, '0');
  }

  /** Whether one submit attempt gets in. Throttled attempts consume no randomness, so outcomes stay reproducible. */
  admit(carrier: Carrier, channel: Channel): Admission {
    if (channel === 'voice' && this.config.noVoice.includes(carrier)) return 'no_route';
    if (!this.bucket.take()) return 'throttled';
    const r = this.random();
    return r < this.config.submitErrorRate ? 'error' : 'ok';
  }

  /**
   * Accepts an admitted message and schedules its receipt(s). Four draws per
   * message, whatever their use, so one message's fate never shifts another's.
   */
  accept(carrier: Carrier, channel: Channel, onReceipt: (r: SimReceipt) => void): { messageId: string } {
    const messageId = `${this.idPrefix}${(this.counter++).toString(16).padStart(6, '0')}`;
    const profile = latencyFor(this.config, carrier, channel);
    const [uLatency, uFail, uLost, uDup] = [this.random(), this.random(), this.random(), this.random()];
    const latencyMs = profile.minMs + uLatency * (profile.maxMs - profile.minMs);
    const failed = uFail < (profile.failureRate ?? this.config.failureRate);
    const status: ReceiptStatus = channel === 'voice' ? (failed ? 'unanswered' : 'answered') : failed ? 'undelivered' : 'delivered';
    if (uLost < this.config.lostReceiptRate) return { messageId };
    const submittedAt = new Date(this.now());
    const fire = (duplicate: boolean) => () =>
      onReceipt({ messageId, status, stat: STATUS_TO_STAT[status], submittedAt, doneAt: new Date(this.now()), duplicate });
    const scale = this.config.timeScale;
    this.after(latencyMs * scale, fire(false));
    if (uDup < this.config.duplicateReceiptRate) this.after((latencyMs + 1_000) * scale, fire(true));
    return { messageId };
  }

  /**
   * Runs `fn` after `ms` (the faces use it for their own delays too); everything pending is dropped
   * on close. Delays from one slot on share a single ticking timer and fire in slot order, within a
   * slot of their time: a simulator holding a minute of traffic at thousands of OTPs per second has
   * ~100,000 receipts pending, and a Node timer each would cost tens of MB of heap.
   */
  after(ms: number, fn: () => void): void {
    const delay = Math.max(0, Math.round(ms));
    if (delay < SLOT_MS) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        fn();
      }, delay);
      this.timers.add(t);
      return;
    }
    const slot = Math.ceil((performance.now() + delay) / SLOT_MS);
    const due = this.slots.get(slot);
    if (due) due.push(fn);
    else this.slots.set(slot, [fn]);
    this.slotted++;
    if (this.ticker === undefined) {
      this.nextSlot = Math.floor(performance.now() / SLOT_MS);
      this.ticker = setInterval(() => this.fireDue(), SLOT_MS);
    }
  }

  private fireDue(): void {
    const now = Math.floor(performance.now() / SLOT_MS);
    for (; this.nextSlot <= now; this.nextSlot++) {
      const due = this.slots.get(this.nextSlot);
      if (!due) continue;
      this.slots.delete(this.nextSlot);
      this.slotted -= due.length;
      for (const fn of due) fn();
    }
    if (this.slotted === 0) this.stopTicker();
  }

  private stopTicker(): void {
    clearInterval(this.ticker);
    this.ticker = undefined;
  }

  get pendingTimers(): number {
    return this.timers.size + this.slotted;
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.slots.clear();
    this.slotted = 0;
    this.stopTicker();
  }
}
