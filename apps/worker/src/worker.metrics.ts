/**
 * The worker's Prometheus metrics: the registry of `#observability`, fed where
 * each fact happens (a submission, a settlement, a webhook attempt) and, for
 * lags and backlogs, at scrape time. Labels come from closed sets, so no
 * phone, account id or code can become one (I9).
 */
import { TOPICS } from '#bus';
import { createMetrics, type NexoMetrics } from '#observability';
import { monthlyStats, otpCarrierFacts, type Db, type ProjectionProgress } from '#projections';
import type { WorkerMetrics } from './worker.deps.js';
import type { RunningWorkers } from './workers.js';

/** The consumer group of each topic the workers consume. */
export const CONSUMER_GROUPS: Record<string, string> = {
  [TOPICS.dispatch]: 'nexo-dispatcher',
  [TOPICS.receipts]: 'nexo-receipts',
  [TOPICS.settlement]: 'nexo-settlement',
  [TOPICS.webhooks]: 'nexo-webhooks',
};

/** The pipeline's hooks into a registry. */
export function workerMetrics(metrics: NexoMetrics, db: Db, clock: () => Date): WorkerMetrics {
  return {
    submitted(provider, seconds, errorCode) {
      metrics.carrierSubmitSeconds.observe({ provider, outcome: errorCode ? 'error' : 'ok' }, seconds);
      if (errorCode) metrics.carrierSubmitErrors.inc({ provider, code: errorCode });
    },
    settled(otpId, outcome, charge) {
      // From the charge itself: a refund soon after the send (every provider refused it) comes
      // before the read models have the OTP, and would otherwise count under carrier "other".
      const facts =
        charge?.carrier !== undefined && charge.channel !== undefined && charge.requestedAt !== undefined
          ? { carrier: charge.carrier, channel: charge.channel, createdAt: charge.requestedAt }
          : otpCarrierFacts(db, otpId);
      const labels = { carrier: facts?.carrier ?? 'other', channel: facts?.channel ?? 'other' };
      if (outcome.type === 'Delivered') {
        metrics.otpDelivered.inc({ ...labels, via: outcome.via });
        if (facts) metrics.otpDeliverySeconds.observe(labels, Math.max(0, (clock().getTime() - Date.parse(facts.createdAt)) / 1000));
      } else {
        metrics.otpRefunded.inc({ ...labels, reason: outcome.reason });
      }
    },
    webhookAttempt(outcome) {
      metrics.webhookAttempts.inc({ outcome });
    },
  };
}

export interface WorkerMetricsSources {
  db: Db;
  projector: ProjectionProgress;
  providers: string[];
  workers: () => RunningWorkers | undefined;
}

/** A registry for a worker process, with its scrape-time figures. */
export function createWorkerMetrics(sources: WorkerMetricsSources): NexoMetrics {
  const metrics = createMetrics(undefined, { providers: sources.providers, projections: Object.keys(sources.projector.checkpoints()) });
  metrics.beforeScrape(async () => {
    const lag = await sources.projector.lag();
    for (const [name, position] of Object.entries(sources.projector.checkpoints())) {
      metrics.projectionLagEvents.set({ projection: name }, Number(lag.head > position ? lag.head - position : 0n));
      metrics.projectionLagSeconds.set({ projection: name }, position < lag.head ? lag.seconds : 0);
    }
  });
  metrics.beforeScrape(() => {
    // From the monthly counters, not a count over open rows (which grows with a backlog): an OTP
    // expires within minutes, so everything in flight was requested this month or the last.
    const now = new Date();
    const months = [now.toISOString().slice(0, 7), new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)).toISOString().slice(0, 7)];
    metrics.otpInFlight.set(months.reduce((n, month) => n + monthlyStats(sources.db, month).in_flight, 0));
  });
  metrics.beforeScrape(async () => {
    const workers = sources.workers();
    if (!workers) return;
    // The lags first: asking them is what refreshes the webhook thread's backlog figure.
    const lags = await workers.consumerLag();
    metrics.webhookBacklog.set(workers.webhookBacklog());
    metrics.relayLeading.set(workers.relaying() ? 1 : 0);
    for (const [topic, { lag, held }] of Object.entries(lags)) {
      metrics.busConsumerLag.set({ topic, group: CONSUMER_GROUPS[topic] }, lag);
      metrics.busHeld.set({ topic, group: CONSUMER_GROUPS[topic] }, held);
    }
  });
  return metrics;
}
