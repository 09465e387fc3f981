/** The read models the consumers look things up in, over the local SQLite file. */
import { accountOfOtp, findOtpByProviderMessage, getWebhook, openOtpsDueBefore, otpCarrierFacts, type Db } from '#projections';
import type { DueOtps } from './expiry.worker.js';
import type { RouteLookup } from './receipts.consumer.js';
import type { WebhookDirectory } from './webhooks/webhooks.worker.js';

export interface Lookups {
  routes: RouteLookup;
  due: DueOtps;
  directory: WebhookDirectory;
}

/**
 * An account's webhook endpoint is read twice per webhook (record, send), at
 * thousands per second: a second's cache. A reconfigured URL or secret is
 * used within that second (plus the projection's lag). An empty URL: removed.
 */
const WEBHOOK_CACHE_MS = 1_000;
const WEBHOOK_CACHE_MAX = 10_000;

function cachedWebhooks(db: Db): WebhookDirectory['accountWebhook'] {
  const cache = new Map<string, { value: ReturnType<WebhookDirectory['accountWebhook']>; until: number }>();
  return (accountId) => {
    const now = performance.now();
    const hit = cache.get(accountId);
    if (hit !== undefined && hit.until > now) return hit.value;
    const w = getWebhook(db, accountId);
    const value = w && { url: w.url, secret: w.secretSealed, position: w.position };
    if (cache.size >= WEBHOOK_CACHE_MAX) cache.clear();
    // Only found endpoints are kept: one configured a moment ago is seen at once.
    if (value) cache.set(accountId, { value, until: now + WEBHOOK_CACHE_MS });
    return value;
  };
}

export function lookupsOn(db: Db): Lookups {
  return {
    routes: {
      find: (provider, providerMessageId) => findOtpByProviderMessage(db, provider, providerMessageId),
      accountOf: (otpId) => accountOfOtp(db, otpId),
    },
    due: { dueBefore: (epochMs, limit) => openOtpsDueBefore(db, epochMs, limit) },
    directory: {
      accountWebhook: cachedWebhooks(db),
      otpFacts: (otpId) => otpCarrierFacts(db, otpId),
    },
  };
}
