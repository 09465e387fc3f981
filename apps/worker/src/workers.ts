/**
 * Every consumer of the delivery pipeline, started together: the relay (log →
 * bus), dispatcher, receipts, settlement, expiry and webhooks. The embedded
 * default runs them inside the API process; `apps/worker` runs them alone
 * against Kafka and EventStoreDB.
 */
import { Relay, TOPICS } from '#bus';
import type { Receipt } from '#carriers';
import { startDispatcher, type DispatcherOptions } from './dispatcher.consumer.js';
import { startExpiry } from './expiry.worker.js';
import type { Lookups } from './lookups.js';
import { startReceipts } from './receipts.consumer.js';
import { relayRoute } from './relay.routes.js';
import { startSettlement } from './settlement.consumer.js';
import type { WorkerDeps } from './worker.deps.js';
import { startWebhooks, type WebhookOptions } from './webhooks/webhooks.worker.js';

export interface WorkerOptions {
  /** Run the relay here (exactly one relay per event log). */
  relay?: boolean;
  expiryIntervalMs?: number;
  dispatcher?: DispatcherOptions;
  /** How often kept receipts (not matched to an OTP yet) are looked at. */
  receiptRematchMs?: number;
  webhooks?: WebhookOptions;
}

export interface RunningWorkers {
  relay: Relay | undefined;
  webhookBacklog(): number;
  /** Dispatches parked until their phone's window opens, and receipts not matched to an OTP yet. */
  waiting(): { parkedDispatches: number; unmatchedReceipts: number };
  consumerLag(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** Receipts from any source (SMPP, simulator, the HTTP callback) enter the pipeline here. */
export function receiptPublisher(deps: Pick<WorkerDeps, 'bus'>): (receipt: Receipt) => Promise<void> {
  return (r) =>
    deps.bus.publish(TOPICS.receipts, [
      {
        key: r.providerMessageId,
        value: { provider: r.provider, providerMessageId: r.providerMessageId, status: r.status, raw: r.raw, at: r.at, ...(r.otpId ? { otpId: r.otpId } : {}) },
      },
    ]);
}

export async function startWorkers(deps: WorkerDeps, lookups: Lookups, options: WorkerOptions = {}): Promise<RunningWorkers> {
  const relay =
    options.relay === false
      ? undefined
      : new Relay(deps.store, deps.bus, deps.db, relayRoute, { onError: (error) => deps.logger.error({ err: error }, 'relay failed to publish; retrying') });
  relay?.start();
  const dispatcher = await startDispatcher(deps, options.dispatcher);
  const receipts = await startReceipts(deps, lookups.routes, { rematchMs: options.receiptRematchMs });
  const settlement = await startSettlement(deps);
  const expiry = startExpiry(deps, lookups.due, { intervalMs: options.expiryIntervalMs });
  const webhooks = await startWebhooks(deps, lookups.directory, options.webhooks);
  const consumers = { [TOPICS.dispatch]: dispatcher, [TOPICS.receipts]: receipts.consumer, [TOPICS.settlement]: settlement, [TOPICS.webhooks]: webhooks.consumer };
  return {
    relay,
    webhookBacklog: () => webhooks.backlog(),
    waiting: () => ({ parkedDispatches: dispatcher.parked(), unmatchedReceipts: receipts.unmatched() }),
    consumerLag: async () => Object.fromEntries(await Promise.all(Object.entries(consumers).map(async ([t, c]) => [t, await c.lag()] as const))),
    async stop() {
      // Upstream first: stop feeding the bus, then drain the consumers.
      await relay?.stop();
      await dispatcher.stop();
      await receipts.stop();
      await settlement.stop();
      await expiry.stop();
      await webhooks.stop();
    },
  };
}
