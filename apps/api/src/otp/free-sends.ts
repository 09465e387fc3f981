/**
 * Free sends per phone and UTC day, over every account this process serves.
 * Signup is open (no card, no KYC) and a phone takes one send per 30 s from
 * everyone together, so without a cap an attacker minting free accounts could
 * keep a victim's phone busy (every paying customer's code to it refused with
 * 429) and call or text it all day for nothing. Past the cap, test credits do
 * not pay for that phone until the next UTC day; the balance still does.
 *
 * In memory, like the per-phone window: a restart, or another API replica,
 * starts its own count. Bounded: the phones counted longest ago are forgotten
 * first.
 */
import { trimOldest } from '#collections';

const DAY_MS = 86_400_000;

export class FreeSendsPerPhone {
  private readonly counts = new Map<string, { day: number; n: number }>();

  constructor(
    private readonly perDay: number,
    private readonly now: () => number = Date.now,
    private readonly maxPhones = 200_000,
  ) {}

  /** Whether test credits may still pay for a send to this phone today. */
  allowed(phoneHash: string): boolean {
    const c = this.counts.get(phoneHash);
    return (c !== undefined && c.day === this.today() ? c.n : 0) < this.perDay;
  }

  /** A send to this phone was paid with a test credit. */
  record(phoneHash: string): void {
    const day = this.today();
    const c = this.counts.get(phoneHash);
    const n = c !== undefined && c.day === day ? c.n + 1 : 1;
    this.counts.delete(phoneHash);
    this.counts.set(phoneHash, { day, n });
    trimOldest(this.counts, this.maxPhones);
  }

  private today(): number {
    return Math.floor(this.now() / DAY_MS);
  }
}
