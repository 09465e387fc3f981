/**
 * The routes this process has just submitted, by provider message id and by
 * OTP. A receipt often arrives before the read models have projected its
 * `Routed` (a fast carrier, a busy projector); looking here first lets it be
 * recorded at once instead of being kept for a late match. Bounded: the
 * oldest entries go first, and a miss falls back to the read model, so
 * receipts for another instance's submissions still match.
 */
import { trimOldest } from '#collections';
import type { RouteLookup } from './receipts.consumer.js';

interface Route {
  otpId: string;
  accountId: string;
}

export class RecentRoutes {
  private readonly byMessage = new Map<string, Route>();
  private readonly accounts = new Map<string, string>();

  constructor(private readonly capacity = 10_000) {}

  /** Called as soon as an upstream has taken a message, before its `Routed` is appended. */
  submitted(provider: string, providerMessageId: string, otpId: string, accountId: string): void {
    remember(this.byMessage, `${provider}\t${providerMessageId}`, { otpId, accountId }, this.capacity);
    remember(this.accounts, otpId, accountId, this.capacity);
  }

  /** The read-model lookup, with this process's recent submissions first. */
  over(fallback: RouteLookup): RouteLookup {
    return {
      find: (provider, providerMessageId) => this.byMessage.get(`${provider}\t${providerMessageId}`) ?? fallback.find(provider, providerMessageId),
      accountOf: (otpId) => this.accounts.get(otpId) ?? fallback.accountOf(otpId),
    };
  }
}

function remember<V>(map: Map<string, V>, key: string, value: V, capacity: number): void {
  map.set(key, value);
  // Maps iterate in insertion order: the first keys are the oldest.
  trimOldest(map, capacity);
}
