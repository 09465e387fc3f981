/**
 * Token buckets keyed by string (API key id, client address), with an
 * injected clock. Memory stays bounded: idle full buckets are swept.
 */
import { DomainError } from '#domain';

/** API.md's 429: `rate_limited` with `retry_after` whole seconds (the filter adds the Retry-After header). */
export function rateLimited(waitMs: number, message: string): DomainError {
  return new DomainError('rate_limited', message, { retry_after: Math.max(1, Math.ceil(waitMs / 1000)) });
}

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
 * The bucket of a client address: an IPv4 address as it is, an IPv6 one by its /64 (what one
 * subscriber or one cloud machine holds, so walking the prefix does not give a fresh bucket per
 * address), and an IPv4-mapped IPv6 one as its IPv4 address.
 */
export function addressBucket(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!ip.includes(':')) return ip;
  const [head = '', tail = ''] = ip.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
