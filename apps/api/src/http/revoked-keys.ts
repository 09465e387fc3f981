/**
 * Keys revoked through this process, refused by ApiKeyGuard at once: before the
 * read model shows the revocation, and while the guard's cache may still hold
 * a view of the key read before it did. Once the read model shows the key
 * revoked the read model refuses it forever, so an entry is needed only until
 * every cached view older than that has expired: the set holds the
 * revocations of the last few seconds, not every key ever revoked here (it
 * grew by one entry per revocation, without bound, from one free account).
 */

/** How long ApiKeyGuard may answer from a key's cached view without reading the read model. */
export const KEY_CACHE_MS = 1_000;
/**
 * Kept this long after the read model was first seen showing the revocation: a view cached before
 * the projection is at most KEY_CACHE_MS old by then; twice that leaves a margin for timer lateness.
 */
const HOLD_AFTER_SHOWN_MS = 2 * KEY_CACHE_MS;
const CHECK_EVERY_MS = 1_000;

export class RevokedKeys {
  /** Key id → its hash (how the read model is asked) and when the read model was first seen to show it revoked. */
  private readonly held = new Map<string, { keyHash: string; shownAt: number | undefined }>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    /** Whether the read model shows the key with this hash revoked. */
    private readonly shownRevoked: (keyHash: string) => boolean,
    private readonly now: () => number = () => performance.now(),
  ) {}

  add(keyId: string, keyHash: string): void {
    if (!this.held.has(keyId)) this.held.set(keyId, { keyHash, shownAt: undefined });
    if (!this.stopped) this.timer ??= setInterval(() => this.prune(), CHECK_EVERY_MS).unref();
  }

  has(keyId: string): boolean {
    return this.held.has(keyId);
  }

  get size(): number {
    return this.held.size;
  }

  /**
   * Asks the read model about each key not yet seen revoked there, and lets go of those seen long enough
   * ago. A key the read model does not show revoked (projections stuck) stays: it must keep failing.
   */
  prune(): void {
    const now = this.now();
    for (const [keyId, entry] of this.held) {
      if (entry.shownAt === undefined) {
        if (this.shownRevoked(entry.keyHash)) entry.shownAt = now;
      } else if (now - entry.shownAt >= HOLD_AFTER_SHOWN_MS) {
        this.held.delete(keyId);
      }
    }
    if (this.held.size === 0) this.disarm();
  }

  /** For good, before the read model closes: the timer would read it. */
  stop(): void {
    this.stopped = true;
    this.disarm();
  }

  private disarm(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
