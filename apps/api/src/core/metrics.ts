/**
 * This process's Prometheus metrics: the pipeline's registry (`#worker`), plus
 * the API's own scrape-time figure, the month's delivery ratio per carrier
 * read from the stats projection (the figure customers see on /stats).
 */
import { monthlyStats } from '#projections';
import type { NexoMetrics } from '#observability';
import { createWorkerMetrics, type WorkerMetricsSources } from '#worker';

export function createProcessMetrics(sources: WorkerMetricsSources & { clock: () => Date }): NexoMetrics {
  const metrics = createWorkerMetrics(sources);
  metrics.beforeScrape(() => {
    const stats = monthlyStats(sources.db, sources.clock().toISOString().slice(0, 7));
    for (const [carrier, f] of Object.entries(stats.by_carrier)) {
      metrics.otpMonthSettled.set({ carrier }, f.delivered + f.refunded);
      if (f.delivery_rate !== null) metrics.otpMonthDeliveryRatio.set({ carrier }, f.delivery_rate);
    }
  });
  return metrics;
}
