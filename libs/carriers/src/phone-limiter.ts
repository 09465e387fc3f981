/**
 * I8: at most one carrier submission per phone per 30 s (the upstream's rule).
 * Keyed by the phone hash, never the number. Kafka partitions by phoneHash, so
 * one worker owns each phone; the owner keeps its windows on disk too and
 * `restore`s them at start, so a restart does not forget them.
 *
 * Every entry lives for the same window, so the Map's insertion order is also
 * expiry order (an entry is re-inserted when renewed): expired entries are
 * swept from the head in amortized O(1), and memory is bounded by
 * `submissions per window`, with `maxEntries` as a hard ceiling.
 */
export interface PhoneLimiterOptions {
  /** Default 30 000 ms (I8). */
  windowMs?: number;
  /** Epoch milliseconds; inject a fake in tests. */
  now?: () => number;
  /** Default 200 000 (≈ 6 600 submissions/s sustained over the window). */
  maxEntries?: number;
}

export type LimitDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

export class PhoneLimiter {
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly maxEntries: number;
  /** key → time of the submission that opened its window. */
  private readonly last = new Map<string, number>();

  constructor(opts: PhoneLimiterOptions = {}) {
    this.windowMs = opts.windowMs ?? 30_000;
    this.now = opts.now ?? Date.now;
    this.maxEntries = opts.maxEntries ?? 200_000;
    if (!(this.windowMs > 0) || !(this.maxEntries > 0)) throw new RangeError('windowMs and maxEntries must be positive');
  }

  /** Whether a submission is allowed now, without recording one. */
  check(key: string): LimitDecision {
    return this.decide(key, this.now());
  }

  /** Check and, when allowed, record the submission in one step. */
  tryAcquire(key: string): LimitDecision {
    const t = this.now();
    const d = this.decide(key, t);
    if (d.allowed) {
      this.last.delete(key);
      this.last.set(key, t);
    }
    return d;
  }

  private decide(key: string, t: number): LimitDecision {
    this.sweep(t);
    const since = this.last.get(key);
    if (since !== undefined && t - since < this.windowMs) return { allowed: false, retryAfterMs: since + this.windowMs - t };
    if (since === undefined && this.last.size >= this.maxEntries) {
      // Full of live windows: refusing is the only answer that keeps I8; evicting one would allow a second send.
      const oldest = this.last.values().next().value as number;
      return { allowed: false, retryAfterMs: Math.max(1, oldest + this.windowMs - t) };
    }
    return { allowed: true };
  }

  /**
   * A window opened before this process started (kept on disk by its owner): restored windows must
   * come oldest first, so insertion order stays expiry order. Already-expired ones are skipped.
   */
  restore(key: string, since: number): void {
    if (this.now() - since >= this.windowMs) return;
    this.last.delete(key);
    this.last.set(key, since);
  }

  get windowLengthMs(): number {
    return this.windowMs;
  }

  /** Forget a key, for a submission that provably never reached an upstream (e.g. connection refused). */
  release(key: string): void {
    this.last.delete(key);
  }

  get size(): number {
    return this.last.size;
  }

  private sweep(t: number): void {
    for (const [key, since] of this.last) {
      // A clock that stepped back leaves younger-looking entries; they expire later, which errs on the safe side.
      if (t - since < this.windowMs) break;
      this.last.delete(key);
    }
  }
}
