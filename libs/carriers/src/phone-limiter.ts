/**
 * I8: at most one carrier submission per phone per 30 s (the upstream's rule).
 * Keyed by the phone hash, never the number. Kafka partitions by phoneHash, so
 * one worker owns each phone; the owner keeps its windows on disk too and
 * `restore`s them at start, so a restart does not forget them.
 *
 * Every entry lives for the same window, so the order windows were opened in
 * is also expiry order: expired entries are swept from the head of an
 * `ExpiryQueue` in amortized O(1) (a sweep over the Map itself walked every
 * earlier deletion's hole: 21 µs per send at 2,000 sends/s once windows
 * expired, 79 µs at 5,000/s), and memory is bounded by `submissions per
 * window`, with `maxEntries` as a hard ceiling.
 *
 * The entries are kept small, since a busy service holds one per phone sent to in the last 30 s
 * (150,000 at 5,000 sends/s, in the API's limiter and the dispatcher's each): a phone hash (64 hex
 * characters, an 80-byte string, often a fresh copy parsed from a message) is kept as its first 64
 * bits in a 4-character string (24 bytes), and times as milliseconds since the limiter started,
 * which V8 stores inline for 24 days instead of as a 16-byte number object per entry. Two phones
 * share a window only if their keyed hashes agree in 64 bits: with 150,000 live windows, about one
 * chance in 10^9 per window length.
 */
import { ExpiryQueue } from '#collections';

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
  /** What `now()` said when this limiter was made: times are kept relative to it (see above). */
  private readonly epoch: number;
  /** compact key → time (since `epoch`) of the submission that opened its window. */
  private readonly last = new Map<string, number>();
  /** The windows in the order they were opened; an entry whose key has another time in `last` (or none) is stale. */
  private readonly opened = new ExpiryQueue<string>();
  private readonly isCurrent = (key: string, since: number): boolean => this.last.get(key) === since;
  private readonly forget = (key: string): void => {
    this.last.delete(key);
  };

  constructor(opts: PhoneLimiterOptions = {}) {
    this.windowMs = opts.windowMs ?? 30_000;
    this.now = opts.now ?? Date.now;
    this.maxEntries = opts.maxEntries ?? 200_000;
    if (!(this.windowMs > 0) || !(this.maxEntries > 0)) throw new RangeError('windowMs and maxEntries must be positive');
    this.epoch = this.now();
  }

  /** Whether a submission is allowed now, without recording one. */
  check(key: string): LimitDecision {
    return this.decide(compactKey(key), this.now() - this.epoch);
  }

  /** Check and, when allowed, record the submission in one step. */
  tryAcquire(key: string): LimitDecision {
    const k = compactKey(key);
    const t = this.now() - this.epoch;
    const d = this.decide(k, t);
    if (d.allowed) this.record(k, t);
    return d;
  }

  private decide(key: string, t: number): LimitDecision {
    this.sweep(t);
    const since = this.last.get(key);
    if (since !== undefined && t - since < this.windowMs) return { allowed: false, retryAfterMs: since + this.windowMs - t };
    if (since === undefined && this.last.size >= this.maxEntries) {
      // Full of live windows: refusing is the only answer that keeps I8; evicting one would allow a second send.
      const oldest = this.opened.oldest(this.isCurrent)?.time ?? t;
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
    this.record(compactKey(key), since - this.epoch);
  }

  private record(key: string, since: number): void {
    this.last.delete(key);
    this.last.set(key, since);
    this.opened.push(key, since);
  }

  get windowLengthMs(): number {
    return this.windowMs;
  }

  /** Forget a key, for a submission that provably never reached an upstream (e.g. connection refused). */
  release(key: string): void {
    this.last.delete(compactKey(key));
  }

  get size(): number {
    return this.last.size;
  }

  private sweep(t: number): void {
    // A clock that stepped back leaves younger-looking entries; they expire later, which errs on the safe side.
    this.opened.sweep(t - this.windowMs, this.isCurrent, this.forget);
  }
}

/** 0-15 for a lower-case hex digit's char code, -1 otherwise. */
function nibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * A phone hash (64 lower-case hex characters, `phoneHash`) as its first 64 bits in four 16-bit
 * characters: a flat 24-byte string instead of an 80-byte one. Any other key is kept as it is.
 */
export function compactKey(key: string): string {
  if (key.length !== 64) return key;
  let high = 0;
  let low = 0;
  for (let i = 0; i < 8; i++) {
    const h = nibble(key.charCodeAt(i));
    const l = nibble(key.charCodeAt(i + 8));
    if ((h | l) < 0) return key;
    high = (high << 4) | h;
    low = (low << 4) | l;
  }
  return String.fromCharCode(high >>> 16, high & 0xffff, low >>> 16, low & 0xffff);
}
