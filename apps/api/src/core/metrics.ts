/**
 * This process's Prometheus metrics: the registry from `#observability`, fed
 * where each fact happens (an OTP accepted, a submission, a settlement) and,
 * for figures read from the read models, at scrape time.
 */
import { countOpenOtps, monthlyStats, otpCarrierFacts, type Db, type Projector } from '#projections';
import { createMetrics, type NexoMetrics } from '#observability';
import type { WorkerMetrics } from '#worker';
import type { RunningWorkers } from '#worker';

export interface MetricsSources {
  db: Db;
  projector: Projector;
  providers: string[];
  workers: () => RunningWorkers | undefined;
  clock: () => Date;
}

export function createProcessMetrics(sources: MetricsSources): NexoMetrics {
  const metrics = createMetrics(undefined, {
    providers: sources.providers,
    projections: Object.keys(sources.projector.checkpoints()),
  });
  metrics.beforeScrape(async () => {
    const lag = await sources.projector.lag();
    for (const [name, position] of Object.entries(sources.projector.checkpoints())) {
      metrics.projectionLagEvents.set({ projection: name }, Number(lag.head > position ? lag.head - position : 0n));
      metrics.projectionLagSeconds.set({ projection: name }, position < lag.head ? lag.seconds : 0);
    }
  });
  metrics.beforeScrape(() => {
    const month = sources.clock().toISOString().slice(0, 7);
    const stats = monthlyStats(sources.db, month);
    for (const [carrier, f] of Object.entries(stats.by_carrier)) {
      const settled = f.delivered + f.refunded;
      metrics.otpMonthSettled.set({ carrier }, settled);
      if (f.delivery_rate !== null) metrics.otpMonthDeliveryRatio.set({ carrier }, f.delivery_rate);
    }
    metrics.otpInFlight.set(countOpenOtps(sources.db));
  });
  metrics.beforeScrape(async () => {
    const workers = sources.workers();
    if (!workers) return;
    metrics.webhookBacklog.set(workers.webhookBacklog());
    for (const [topic, lag] of Object.entries(await workers.consumerLag())) {
      metrics.busConsumerLag.set({ topic, group: `nexo-${topic.split('.').pop()}` }, lag);
    }
  });
  return metrics;
}

/** The pipeline's hooks into the registry. */
export function workerMetrics(metrics: NexoMetrics, db: Db, clock: () => Date): WorkerMetrics {
  return {
    submitted(provider, seconds, errorCode) {
      metrics.carrierSubmitSeconds.observe({ provider, outcome: errorCode ? 'error' : 'ok' }, seconds);
      if (errorCode) metrics.carrierSubmitErrors.inc({ provider, code: errorCode });
    },
    settled(otpId, outcome) {
      const facts = otpCarrierFacts(db, otpId);
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
