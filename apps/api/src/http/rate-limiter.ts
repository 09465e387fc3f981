/**
 * Token buckets keyed by string (API key id, client address), with an
 * injected clock. Memory stays bounded: idle full buckets are swept.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private sweeps = 0;

  constructor(
    private readonly ratePerMs: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token; returns 0 when allowed, else milliseconds until one is available. */
  take(key: string): number {
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.ratePerMs);
    b.at = now;
    this.buckets.set(key, b);
    if (++this.sweeps % 10_000 === 0) this.sweep(now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / this.ratePerMs);
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * this.ratePerMs >= this.burst) this.buckets.delete(k);
  }
}

/**
 * One send per phone per interval (the upstream's rule, I8). A slot is
 * reserved before the append and released if the send is refused, so a
 * refused request does not block the user's next try.
 */
export class PhoneLimiter {
  private readonly last = new Map<string, number>();
  private sweeps = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Returns 0 and reserves the slot, or the milliseconds until the phone may be sent to again. */
  reserve(phoneHash: string): number {
    const now = this.now();
    const prev = this.last.get(phoneHash);
    if (prev !== undefined && now - prev < this.intervalMs) return this.intervalMs - (now - prev);
    this.last.set(phoneHash, now);
    if (++this.sweeps % 10_000 === 0) for (const [k, t] of this.last) if (now - t >= this.intervalMs) this.last.delete(k);
    return 0;
  }

  release(phoneHash: string): void {
    this.last.delete(phoneHash);
  }
}
