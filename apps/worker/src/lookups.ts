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

export function lookupsOn(db: Db): Lookups {
  return {
    routes: {
      find: (provider, providerMessageId) => findOtpByProviderMessage(db, provider, providerMessageId),
      accountOf: (otpId) => accountOfOtp(db, otpId),
    },
    due: { dueBefore: (epochMs, limit) => openOtpsDueBefore(db, epochMs, limit) },
    directory: {
      accountWebhook: (accountId) => {
        const w = getWebhook(db, accountId);
        return w && { url: w.url, secret: w.secretSealed };
      },
      otpFacts: (otpId) => otpCarrierFacts(db, otpId),
    },
  };
}
