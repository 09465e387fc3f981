/**
 * Every consumer of the delivery pipeline, started together: the relay (log →
 * bus), dispatcher, receipts, settlement, expiry and webhooks. The embedded
 * default runs them inside the API process; `apps/worker` runs them alone
 * against Kafka and EventStoreDB.
 */
import { type Consumer, type OutgoingMessage, Relay, RelayLease, type RelayLeaseOptions, TOPICS } from '#bus';
import type { Receipt } from '#carriers';
import { startDispatcher, type DispatcherOptions } from './dispatcher.consumer.js';
import { startExpiry } from './expiry.worker.js';
import type { Lookups } from './lookups.js';
import { type ReceiptsWorker, startReceipts } from './receipts.consumer.js';
import { RecentRoutes } from './recent-routes.js';
import { createRelayRoute } from './relay.routes.js';
import { settler, startSettlement } from './settlement.consumer.js';
import type { WorkerDeps } from './worker.deps.js';
import type { WebhookSender } from './webhooks/webhooks-thread.js';
import { startWebhooks, type WebhookOptions } from './webhooks/webhooks.worker.js';

export interface WorkerOptions {
  /** Run the relay here (exactly one relay per event log). */
  relay?: boolean;
  /**
   * Relay only while holding the lease in the log (relay-lease.ts), so that of several instances
   * started with the relay exactly one runs it and another takes over when it dies. Without it the
   * relay runs unconditionally: the embedded default, one process.
   */
  relayLease?: Omit<RelayLeaseOptions, 'onError' | 'onChange'>;
  expiryIntervalMs?: number;
  dispatcher?: DispatcherOptions;
  /** How often kept receipts (not matched to an OTP yet) are looked at. */
  receiptRematchMs?: number;
  /** Settle a delivering receipt as soon as it is recorded (see `ReceiptsOptions.settleNow`). */
  settleOnReceipt?: boolean;
  webhooks?: WebhookOptions;
  /**
   * Webhooks sent elsewhere (the embedded default's webhook thread, which follows the log with a
   * relay of its own): the relay here leaves their topic out, and backlog, lag and stop go to it.
   */
  webhookSender?: WebhookSender;
}

/** Every topic the relay publishes but webhooks, for when another relay (and sender) has those. */
const NOT_WEBHOOKS = new Set(Object.values(TOPICS).filter((t) => t !== TOPICS.webhooks));

export interface RunningWorkers {
  relay: Relay | undefined;
  /** Records a receipt without the bus (see `receiptPublisher`'s `direct`). */
  takeReceipt: ReceiptsWorker['take'];
  /** Whether this instance relays now: always with a relay and no lease. */
  relaying(): boolean;
  webhookBacklog(): number;
  /** Dispatches parked until their phone's window opens, and receipts not matched to an OTP yet. */
  waiting(): { parkedDispatches: number; unmatchedReceipts: number };
  /** Per topic: messages behind the head, and of those, messages held aside by the bus (poison keys). */
  consumerLag(): Promise<Record<string, { lag: number; held: number }>>;
  stop(): Promise<void>;
}

/**
 * Receipts from any source (SMPP, simulator, the HTTP callback) enter the
 * pipeline here. Receipts that arrive in the same turn of the event loop are
 * published together, one bus write for all; each caller's promise still
 * resolves only once its receipt is durable (SMPP acknowledges on it).
 *
 * `direct`: where the receipts worker runs in this process (the embedded
 * default), its `take`, which records a receipt at once instead: no bus row,
 * and no wait for the consumer's batch in progress, whose appends every new
 * receipt otherwise waits out before its own. Receipts of one message still go
 * one after another, in arrival order; one that `take` cannot record, or that
 * names no OTP yet, is published to the bus after all, for the consumer.
 */
export function receiptPublisher(deps: Pick<WorkerDeps, 'bus'>, direct?: () => ReceiptsWorker['take'] | undefined): (receipt: Receipt) => Promise<void> {
  let pending: { message: OutgoingMessage; resolve(): void; reject(error: unknown): void }[] = [];
  /** Per provider message id, the last receipt being taken directly: the next waits for it. */
  const lanes = new Map<string, Promise<void>>();
  const flush = () => {
    const batch = pending;
    pending = [];
    deps.bus.publish(TOPICS.receipts, batch.map((p) => p.message)).then(
      () => batch.forEach((p) => p.resolve()),
      (error: unknown) => batch.forEach((p) => p.reject(error)),
    );
  };
  const publish = (message: OutgoingMessage) =>
    new Promise<void>((resolve, reject) => {
      if (pending.push({ message, resolve, reject }) === 1) setImmediate(flush);
    });
  return (r) => {
    const message = {
      key: r.providerMessageId,
      value: { provider: r.provider, providerMessageId: r.providerMessageId, status: r.status, raw: r.raw, at: r.at, ...(r.otpId ? { otpId: r.otpId } : {}), ...(r.otpId && r.attempt ? { attempt: r.attempt } : {}) },
    };
    const take = direct?.();
    if (!take) return publish(message);
    const before = lanes.get(message.key);
    const taking = (before ? before.then(() => take(message.value)) : take(message.value)).then(
      (recorded) => (recorded ? undefined : publish(message)),
      () => publish(message),
    );
    lanes.set(message.key, taking);
    void taking.finally(() => {
      if (lanes.get(message.key) === taking) lanes.delete(message.key);
    }).catch(() => undefined);
    return taking;
  };
}

/** An external sender in the shape of the in-process one. */
function senderAsWorker(sender: WebhookSender) {
  return { consumer: { lag: () => sender.lag(), stop: () => sender.stop() }, backlog: () => sender.backlog(), stop: () => sender.stop() };
}

export async function startWorkers(deps: WorkerDeps, lookups: Lookups, options: WorkerOptions = {}): Promise<RunningWorkers> {
  const relay =
    options.relay === false
      ? undefined
      : new Relay(deps.store, deps.bus, deps.db, createRelayRoute(options.webhookSender ? NOT_WEBHOOKS : undefined), {
          onError: (error) => deps.logger.error({ err: error }, 'relay failed to publish; retrying'),
        });
  const lease =
    relay && options.relayLease
      ? new RelayLease(deps.store, relay, {
          ...options.relayLease,
          onError: (error) => deps.logger.error({ err: error }, 'relay lease: the log did not answer; trying again'),
          onChange: (leading) => deps.logger.info({ holder: options.relayLease!.holder }, leading ? 'relay lease taken: relaying' : 'relay lease lost: standing by'),
        })
      : undefined;
  if (lease) lease.start();
  else relay?.start();
  const recent = new RecentRoutes();
  const settle = settler(deps);
  // Joined together: on Kafka each consumer's first join waits out the group's rebalance delay.
  const started = await Promise.allSettled([
    startDispatcher(deps, { ...options.dispatcher, onSubmitted: (...route) => recent.submitted(...route) }),
    startReceipts(deps, recent.over(lookups.routes), { rematchMs: options.receiptRematchMs, ...(options.settleOnReceipt ? { settleNow: settle } : {}) }),
    startSettlement(deps, settle),
    options.webhookSender ? Promise.resolve(senderAsWorker(options.webhookSender)) : startWebhooks(deps, lookups.directory, options.webhooks),
  ] as const);
  const [d, r, s, w] = started;
  const stopRelay = () => (lease ? lease.stop() : relay?.stop());
  if (d.status === 'rejected' || r.status === 'rejected' || s.status === 'rejected' || w.status === 'rejected') {
    await stopRelay();
    await Promise.all(started.map((x) => (x.status === 'fulfilled' ? x.value.stop().catch(() => undefined) : undefined)));
    throw started.find((x): x is PromiseRejectedResult => x.status === 'rejected')!.reason;
  }
  const [dispatcher, receipts, settlement, webhooks] = [d.value, r.value, s.value, w.value];
  const expiry = startExpiry(deps, lookups.due, { intervalMs: options.expiryIntervalMs });
  const consumers: Record<string, Consumer> = { [TOPICS.dispatch]: dispatcher, [TOPICS.receipts]: receipts.consumer, [TOPICS.settlement]: settlement, [TOPICS.webhooks]: webhooks.consumer };
  return {
    relay,
    takeReceipt: (receipt) => receipts.take(receipt),
    relaying: () => (lease ? lease.leading : relay !== undefined),
    webhookBacklog: () => webhooks.backlog(),
    waiting: () => ({ parkedDispatches: dispatcher.parked(), unmatchedReceipts: receipts.unmatched() }),
    consumerLag: async () =>
      Object.fromEntries(await Promise.all(Object.entries(consumers).map(async ([t, c]) => [t, { lag: await c.lag(), held: (await c.held?.()) ?? 0 }] as const))),
    async stop() {
      // Upstream first: stop feeding the bus, then drain the consumers.
      await stopRelay();
      await dispatcher.stop();
      await receipts.stop();
      await settlement.stop();
      await expiry.stop();
      await webhooks.stop();
    },
  };
}
