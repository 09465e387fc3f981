/**
 * Keys in the order their times were recorded, for a sweep of the expired ones from the front
 * without the cost of walking a Map's holes (see oldest-first.ts): an array with a moving head,
 * compacted once the consumed part is the larger half. An entry whose key was recorded again, or
 * forgotten, since is stale: the owner tells (`isCurrent`) and it is skipped.
 */
export class ExpiryQueue<K> {
  private keys: K[] = [];
  private times: number[] = [];
  private head = 0;

  get length(): number {
    return this.keys.length - this.head;
  }

  push(key: K, time: number): void {
    this.keys.push(key);
    this.times.push(time);
  }

  /**
   * Pops entries from the front while their time is `upTo` or earlier, calling `drop(key, time)`
   * for each one `isCurrent` still owns; stale ones go without a call. Stops at the first current
   * entry that is later.
   */
  sweep(upTo: number, isCurrent: (key: K, time: number) => boolean, drop: (key: K, time: number) => void): void {
    while (this.head < this.keys.length) {
      const key = this.keys[this.head];
      const time = this.times[this.head];
      if (isCurrent(key, time)) {
        if (time > upTo) break;
        drop(key, time);
      }
      this.consume();
    }
    this.compact();
  }

  /** The oldest entry `isCurrent` still owns (stale ones in front of it are dropped), or undefined. */
  oldest(isCurrent: (key: K, time: number) => boolean): { key: K; time: number } | undefined {
    while (this.head < this.keys.length && !isCurrent(this.keys[this.head], this.times[this.head])) this.consume();
    this.compact();
    return this.head < this.keys.length ? { key: this.keys[this.head], time: this.times[this.head] } : undefined;
  }

  /** Moves the head on, letting go of the key there: until the next compaction the array would keep it alive. */
  private consume(): void {
    this.keys[this.head] = undefined as K;
    this.head += 1;
  }

  private compact(): void {
    if (this.head === this.keys.length) {
      this.keys = [];
      this.times = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.keys.length) {
      this.keys = this.keys.slice(this.head);
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }
}
