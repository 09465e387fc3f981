import Database from 'better-sqlite3';
import { Registry } from 'prom-client';
import { createMetrics } from '#observability';
import { workerMetrics } from './worker.metrics.js';

/** Series with a value, as `{ labels, value }`. */
async function counted(registry: Registry, name: string) {
  const values = (await registry.getSingleMetric(name)!.get()).values as { labels: Record<string, string>; value: number; metricName?: string }[];
  return values.filter((v) => v.value > 0 && (v.metricName === undefined || v.metricName === name)).map(({ labels, value }) => ({ labels, value }));
}

describe('workerMetrics: settlements', () => {
  it("count under the charge's carrier and channel, without the read models (a refund right after the send comes before they have the OTP)", async () => {
    const m = createMetrics(new Registry(), { defaultMetrics: false });
    // No read-model tables at all: asking them would throw.
    const db = new Database(':memory:');
    const hooks = workerMetrics(m, db, () => new Date('2026-11-26T10:00:05.000Z'));
    hooks.settled!('otp_1', { type: 'Refunded', reason: 'undelivered' }, { amount: 22_000n, fundedBy: 'balance', carrier: 'vietnamobile', channel: 'voice', requestedAt: '2026-11-26T10:00:00.000Z' });
    hooks.settled!('otp_2', { type: 'Delivered', via: 'receipt' }, { amount: 22_000n, fundedBy: 'test_credit', carrier: 'viettel', channel: 'sms', requestedAt: '2026-11-26T10:00:01.000Z' });
    expect(await counted(m.registry, 'nexo_otp_refunded_total')).toEqual([{ labels: { carrier: 'vietnamobile', channel: 'voice', reason: 'undelivered' }, value: 1 }]);
    expect(await counted(m.registry, 'nexo_otp_delivered_total')).toEqual([{ labels: { carrier: 'viettel', channel: 'sms', via: 'receipt' }, value: 1 }]);
    const histogram = (await m.registry.getSingleMetric('nexo_otp_delivery_seconds')!.get()).values as { metricName?: string; labels: Record<string, unknown>; value: number }[];
    const seconds = histogram.find((v) => v.metricName === 'nexo_otp_delivery_seconds_sum' && v.labels.carrier === 'viettel');
    expect(seconds?.value).toBe(4);
    db.close();
  });
});
