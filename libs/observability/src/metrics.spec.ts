import { Registry } from 'prom-client';
import type { CarrierErrorCode } from '#carriers';
import type { Topic } from '#bus';
import { BUS_TOPICS, CARRIER_ERROR_CODES, LabelSet, OTHER, createMetrics, type NexoMetrics } from './metrics.js';

/** Compile-time equality: the label sets here must list exactly the codes and topics the other libs define. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const errorCodesMatch: Equal<(typeof CARRIER_ERROR_CODES)[number], CarrierErrorCode> = true;
const topicsMatch: Equal<(typeof BUS_TOPICS)[number], Topic> = true;

/** Every metric the alert rules, the dashboard and the README rely on. Renaming one is a breaking change for SREs. */
const CONTRACT: Record<string, { type: 'counter' | 'gauge' | 'histogram'; labels: string[] }> = {
  nexo_otp_requested_total: { type: 'counter', labels: ['carrier', 'channel'] },
  nexo_otp_delivered_total: { type: 'counter', labels: ['carrier', 'channel', 'via'] },
  nexo_otp_refunded_total: { type: 'counter', labels: ['carrier', 'channel', 'reason'] },
  nexo_otp_delivery_seconds: { type: 'histogram', labels: ['carrier', 'channel'] },
  nexo_otp_in_flight: { type: 'gauge', labels: [] },
  nexo_otp_month_delivery_ratio: { type: 'gauge', labels: ['carrier'] },
  nexo_otp_month_settled: { type: 'gauge', labels: ['carrier'] },
  nexo_carrier_submit_seconds: { type: 'histogram', labels: ['provider', 'outcome'] },
  nexo_carrier_submit_errors_total: { type: 'counter', labels: ['provider', 'code'] },
  nexo_carrier_receipts_total: { type: 'counter', labels: ['provider', 'status'] },
  nexo_http_request_duration_seconds: { type: 'histogram', labels: ['method', 'route', 'status'] },
  nexo_eventstore_append_seconds: { type: 'histogram', labels: [] },
  nexo_eventstore_batch_appends: { type: 'histogram', labels: [] },
  nexo_command_state_load_seconds: { type: 'histogram', labels: ['snapshot'] },
  nexo_command_snapshot_seconds: { type: 'histogram', labels: [] },
  nexo_command_snapshot_errors_total: { type: 'counter', labels: [] },
  nexo_projection_lag_events: { type: 'gauge', labels: ['projection'] },
  nexo_projection_lag_seconds: { type: 'gauge', labels: ['projection'] },
  nexo_bus_consumer_lag_messages: { type: 'gauge', labels: ['topic', 'group'] },
  nexo_bus_held_messages: { type: 'gauge', labels: ['topic', 'group'] },
  nexo_relay_leading: { type: 'gauge', labels: [] },
  nexo_webhook_attempts_total: { type: 'counter', labels: ['outcome'] },
  nexo_webhook_backlog_deliveries: { type: 'gauge', labels: [] },
  nexo_chain_head_block: { type: 'gauge', labels: ['chain'] },
  nexo_chain_cursor_block: { type: 'gauge', labels: ['chain'] },
  nexo_chain_confirmations_lag_blocks: { type: 'gauge', labels: ['chain'] },
  nexo_deposits_credited_total: { type: 'counter', labels: ['chain', 'token'] },
  nexo_deposits_reversed_total: { type: 'counter', labels: ['chain'] },
  nexo_deposits_uncredited_total: { type: 'counter', labels: ['chain'] },
  nexo_thread_restarts_total: { type: 'counter', labels: ['thread'] },
  nexo_metrics_collect_errors_total: { type: 'counter', labels: [] },
};

/** Label names that would carry per-user values (I9) or unbounded ids. */
const FORBIDDEN_LABELS = /phone|account|key|secret|code_value|otp_?id|address|tx|hash|email|ip|user|path|url/;

const fresh = (): NexoMetrics => createMetrics(new Registry(), { defaultMetrics: false });

interface Item {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}
async function series(m: NexoMetrics, name: string): Promise<Item[]> {
  const metric = m.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  return (await metric.get()).values as Item[];
}

describe('createMetrics', () => {
  it('defines exactly the contracted metrics, with their types and label names', async () => {
    expect(errorCodesMatch && topicsMatch).toBe(true);
    const m = fresh();
    const defined = await m.registry.getMetricsAsJSON();
    const actual = Object.fromEntries(
      defined.map((d) => [d.name, { type: String(d.type), labels: [...((d as unknown as { labelNames?: string[] }).labelNames ?? [])] }]),
    );
    for (const metric of m.registry.getMetricsAsArray()) {
      actual[metric.name]!.labels = [...((metric as unknown as { labelNames: string[] }).labelNames ?? [])];
    }
    expect(actual).toEqual(CONTRACT);
  });

  it('follows Prometheus naming: nexo_ prefix, snake case, _total only on counters, base units, help text', () => {
    const m = fresh();
    for (const metric of m.registry.getMetricsAsArray()) {
      const { name, help, type } = metric as unknown as { name: string; help: string; type: string };
      const labelNames = (metric as unknown as { labelNames: string[] }).labelNames ?? [];
      expect(name).toMatch(/^nexo_[a-z][a-z0-9]*(_[a-z0-9]+)*$/);
      expect(name.endsWith('_total')).toBe(type === 'counter');
      // Durations in seconds, never ms; sizes counted in named units.
      expect(name).not.toMatch(/_(ms|milliseconds|minutes|hours|percent|count|sum|bucket)$/);
      if (type === 'histogram') expect(name).toMatch(/_(seconds|appends)$/);
      expect(help.length).toBeGreaterThan(10);
      for (const label of labelNames) {
        expect(label).toMatch(/^[a-z][a-z_]*$/);
        expect(label).not.toMatch(FORBIDDEN_LABELS);
      }
    }
  });

  it('renders the text format with the recorded values', async () => {
    const m = fresh();
    m.otpRequested.inc({ carrier: 'viettel', channel: 'voice' });
    m.otpDelivered.inc({ carrier: 'viettel', channel: 'voice', via: 'voice_answer' });
    m.otpDeliverySeconds.observe({ carrier: 'viettel', channel: 'voice' }, 6.2);
    m.httpRequestSeconds.observe({ method: 'post', route: '/api/v1/send-otp', status: 200 }, 0.004);
    m.eventstoreBatchAppends.observe(12);
    m.otpMonthDeliveryRatio.set({ carrier: 'mobifone' }, 0.93);
    m.webhookBacklog.set(4);
    const text = await m.render();
    expect(m.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text).toContain('# HELP nexo_otp_requested_total OTPs accepted and charged.');
    expect(text).toContain('# TYPE nexo_otp_delivery_seconds histogram');
    expect(text).toContain('nexo_otp_requested_total{carrier="viettel",channel="voice"} 1');
    expect(text).toContain('nexo_otp_delivered_total{carrier="viettel",channel="voice",via="voice_answer"} 1');
    expect(text).toContain('nexo_otp_delivery_seconds_bucket{le="7.5",carrier="viettel",channel="voice"} 1');
    expect(text).toContain('nexo_http_request_duration_seconds_count{method="POST",route="/api/v1/send-otp",status="200"} 1');
    expect(text).toContain('nexo_eventstore_batch_appends_bucket{le="16"} 1');
    expect(text).toContain('nexo_otp_month_delivery_ratio{carrier="mobifone"} 0.93');
    expect(text).toContain('nexo_webhook_backlog_deliveries 4');
  });

  it('starts every carrier × channel OTP counter at 0, so rate() sees the first increment', async () => {
    const m = fresh();
    const refunded = await series(m, 'nexo_otp_refunded_total');
    expect(refunded).toHaveLength(7 * 2 * 3);
    expect(refunded.every((s) => s.value === 0)).toBe(true);
    expect(refunded).toContainEqual({ labels: { carrier: 'mobifone', channel: 'sms', reason: 'expired' }, value: 0 });
  });

  it('adds the standard process_* and nodejs_* metrics without a prefix when asked', async () => {
    const text = await createMetrics(new Registry()).render();
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^process_resident_memory_bytes /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).not.toMatch(/^nexo_process_/m);
  });
});

describe('bounded labels (I9: no phone, account id or key in a label)', () => {
  it('records values outside the closed sets as "other"', async () => {
    const m = fresh();
    m.otpRequested.inc({ carrier: '+84912345678', channel: 'fax' });
    m.otpRequested.inc({ carrier: 'Viettel ', channel: 'SMS' });
    m.otpRefunded.inc({ carrier: 'vinaphone', channel: 'sms', reason: 'acct_3f9c2e' });
    m.httpRequestSeconds.observe({ method: 'BREW', route: '/api/v1/otp/01J9ZK3XQ7', status: 418 }, 0.01);
    m.carrierSubmitErrors.inc({ provider: 'sk_live_abcdef', code: 'EPIPE' });
    m.depositsCredited.inc({ chain: 'ethereum', token: '0xdAC17F958D2ee523a2206206994597C13D831ec7' });
    m.busConsumerLag.set({ topic: 'nexo.otp.dispatch', group: undefined }, 3);

    expect(await series(m, 'nexo_otp_requested_total')).toContainEqual({ labels: { carrier: OTHER, channel: OTHER }, value: 1 });
    expect(await series(m, 'nexo_otp_requested_total')).toContainEqual({ labels: { carrier: 'viettel', channel: 'sms' }, value: 1 });
    expect(await series(m, 'nexo_otp_refunded_total')).toContainEqual({
      labels: { carrier: 'vinaphone', channel: 'sms', reason: OTHER },
      value: 1,
    });
    const http = (await series(m, 'nexo_http_request_duration_seconds')).filter((s) => s.metricName?.endsWith('_count'));
    expect(http).toEqual([{ labels: { method: OTHER, route: OTHER, status: OTHER }, value: 1, metricName: 'nexo_http_request_duration_seconds_count' }]);
    expect(await series(m, 'nexo_carrier_submit_errors_total')).toEqual([{ labels: { provider: OTHER, code: OTHER }, value: 1 }]);
    expect(await series(m, 'nexo_deposits_credited_total')).toEqual([{ labels: { chain: 'ethereum', token: OTHER }, value: 1 }]);
    expect(await series(m, 'nexo_bus_consumer_lag_messages')).toEqual([{ labels: { topic: 'nexo.otp.dispatch', group: OTHER }, value: 3 }]);

    const text = await m.render();
    expect(text).not.toContain('84912345678');
    expect(text).not.toContain('acct_3f9c2e');
    expect(text).not.toContain('sk_live');
    expect(text).not.toContain('01J9ZK3XQ7');
  });

  it('keeps the series count within the product of the sets whatever the input', async () => {
    const m = fresh();
    for (let i = 0; i < 2000; i++) {
      const junk = `x${i}`;
      m.otpDeliverySeconds.observe({ carrier: junk, channel: junk }, 1);
      m.carrierReceipts.inc({ provider: junk, status: junk });
      m.httpRequestSeconds.observe({ method: 'GET', route: `/api/v1/otp/${i}`, status: 200 + (i % 400) }, 0.001);
      m.chainHeadBlock.set({ chain: junk }, i);
      m.projectionLagSeconds.set({ projection: junk }, i);
      m.webhookAttempts.inc({ outcome: junk });
    }
    const counts = async (name: string, suffix = '') =>
      new Set((await series(m, name)).filter((s) => (s.metricName ?? name).endsWith(suffix)).map((s) => JSON.stringify(s.labels))).size;
    expect(await counts('nexo_otp_delivery_seconds', '_count')).toBe(1);
    expect(await counts('nexo_carrier_receipts_total')).toBe(1);
    expect(await counts('nexo_chain_head_block')).toBe(1);
    expect(await counts('nexo_projection_lag_seconds')).toBe(1);
    expect(await counts('nexo_webhook_attempts_total')).toBe(1);
    expect(await counts('nexo_http_request_duration_seconds', '_count')).toBeLessThanOrEqual(m.labels.httpStatus.values().length);
  });

  it('clamps the labels given to a timer at its end', async () => {
    const m = fresh();
    const end = m.carrierSubmitSeconds.startTimer();
    const seconds = end({ provider: 'simulator', outcome: 'exploded' });
    expect(seconds).toBeGreaterThanOrEqual(0);
    const counts = (await series(m, 'nexo_carrier_submit_seconds')).filter((s) => s.metricName?.endsWith('_count'));
    expect(counts).toEqual([{ labels: { provider: 'simulator', outcome: OTHER }, value: 1, metricName: 'nexo_carrier_submit_seconds_count' }]);
  });

  it('takes providers, chains, routes, projections and groups from configuration at start', async () => {
    const m = createMetrics(new Registry(), {
      defaultMetrics: false,
      providers: ['vnpt-sms', 'Esms'],
      chains: ['tron'],
      routes: ['/api/v1/admin/:id'],
      projections: ['ledger'],
      consumerGroups: ['nexo-expiry'],
    });
    m.labels.provider.allow('smpp-viettel');
    m.carrierReceipts.inc({ provider: 'esms', status: 'delivered' });
    m.carrierReceipts.inc({ provider: 'smpp-viettel', status: 'delivered' });
    m.chainCursorBlock.set({ chain: 'tron' }, 7);
    m.httpRequestSeconds.observe({ method: 'GET', route: '/api/v1/admin/:id', status: 200 }, 0.001);
    const providers = (await series(m, 'nexo_carrier_receipts_total')).map((s) => s.labels.provider);
    expect(providers.sort()).toEqual(['esms', 'smpp-viettel']);
    expect(await series(m, 'nexo_chain_cursor_block')).toEqual([{ labels: { chain: 'tron' }, value: 7 }]);
    expect(m.labels.route.has('/api/v1/admin/:id')).toBe(true);
    expect(m.labels.projection.has('ledger')).toBe(true);
    expect(m.labels.group.has('nexo-expiry')).toBe(true);
  });

  it('refuses to widen a fixed set, a value of the wrong shape, or a set past its capacity', () => {
    const m = fresh();
    expect(() => m.labels.carrier.allow('newcarrier')).toThrow(/fixed set/);
    expect(() => m.labels.route.allow('/api/v1/otp/01J9ZK3XQ7?x=1')).toThrow(/not an allowed shape/);
    expect(() => m.labels.provider.allow('+84912345678')).toThrow(/not an allowed shape/);
    expect(() => createMetrics(new Registry(), { defaultMetrics: false, chains: ['a b'] })).toThrow(/chain/);
    const small = new LabelSet('x', [], { pattern: /^[a-z]+$/, capacity: 3 });
    small.allow('a', 'b');
    expect(() => small.allow('c')).toThrow(/full/);
    expect(small.values()).toEqual(['a', 'b', OTHER]);
  });
});

describe('render', () => {
  it('runs the scrape hooks first and still answers when one fails', async () => {
    const m = fresh();
    m.beforeScrape(() => m.otpInFlight.set(42));
    m.beforeScrape(async () => {
      throw new Error('projection unavailable');
    });
    m.beforeScrape(() => m.otpMonthSettled.set({ carrier: 'viettel' }, 1500));
    const text = await m.render();
    expect(text).toContain('nexo_otp_in_flight 42');
    expect(text).toContain('nexo_otp_month_settled{carrier="viettel"} 1500');
    expect(text).toContain('nexo_metrics_collect_errors_total 1');
  });

  it('drops a gauge series that has no value now', async () => {
    const m = fresh();
    m.otpMonthDeliveryRatio.set({ carrier: 'viettel' }, 0.95);
    m.otpMonthDeliveryRatio.remove({ carrier: 'viettel' });
    expect(await m.render()).not.toMatch(/^nexo_otp_month_delivery_ratio\{/m);
  });
});
