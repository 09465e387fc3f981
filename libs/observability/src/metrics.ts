/**
 * Every Prometheus metric NEXO ROUTE exposes, defined once so that names,
 * help texts, labels and buckets cannot drift between processes. Each process
 * (api, worker, chain-listener) builds its own registry with `createMetrics`
 * and serves `render()` at GET /metrics; Prometheus adds `job` and `instance`.
 *
 * Labels are clamped through closed sets (metrics.labels.ts): a value outside
 * the set is recorded as `other`, so no caller can raise the series count, and
 * no phone, account id or key can reach a label (I9).
 *
 * The names, the alert rules (infra/prometheus/alerts.yml) and the dashboard
 * (infra/grafana/dashboards/nexo.json) are checked against each other by
 * prometheus-rules.int.spec.ts.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { OTHER, type STATE_LOAD_SNAPSHOT, createLabelSets, type LabelSet, type LabelSetConfig, type LabelValue, type MetricLabels } from './metrics.labels.js';

export * from './metrics.labels.js';

/** Request → delivered: voice rings in 5-10 s, SMS receipts take seconds to minutes, the expiry window ends at 600 s. */
export const OTP_DELIVERY_BUCKETS = [1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600];
/** One upstream submit: an HTTP call or an SMPP submit_sm round trip. */
export const CARRIER_SUBMIT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
export const HTTP_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** One append as its caller sees it, group-commit wait included. */
export const EVENTSTORE_APPEND_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
export const EVENTSTORE_BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/** An account's state loaded (from a snapshot, ~50 ms; from a whole long stream, seconds) or written down. */
export const STATE_LOAD_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

type Labels<N extends string> = { readonly [K in N]: LabelValue };
type LabelSets<N extends string> = { readonly [K in N]: LabelSet };

function clampAll<N extends string>(sets: LabelSets<N>, labels: Labels<N>): Record<N, string> {
  const out = {} as Record<N, string>;
  for (const name of Object.keys(sets) as N[]) out[name] = sets[name].clamp(labels[name]);
  return out;
}

export class BoundedCounter<N extends string> {
  constructor(
    readonly metric: Counter<N>,
    private readonly sets: LabelSets<N>,
  ) {}
  inc(labels: Labels<N>, value = 1): void {
    this.metric.inc(clampAll(this.sets, labels), value);
  }
}

export class BoundedGauge<N extends string> {
  constructor(
    readonly metric: Gauge<N>,
    private readonly sets: LabelSets<N>,
  ) {}
  set(labels: Labels<N>, value: number): void {
    this.metric.set(clampAll(this.sets, labels), value);
  }
  inc(labels: Labels<N>, value = 1): void {
    this.metric.inc(clampAll(this.sets, labels), value);
  }
  dec(labels: Labels<N>, value = 1): void {
    this.metric.dec(clampAll(this.sets, labels), value);
  }
  /** Drops the series, for a figure that has no value now (a month with nothing settled). */
  remove(labels: Labels<N>): void {
    this.metric.remove(clampAll(this.sets, labels));
  }
}

export class BoundedHistogram<N extends string> {
  constructor(
    readonly metric: Histogram<N>,
    private readonly sets: LabelSets<N>,
  ) {}
  observe(labels: Labels<N>, seconds: number): void {
    this.metric.observe(clampAll(this.sets, labels), seconds);
  }
  /** Starts a clock; the returned function records the elapsed seconds with labels known only at the end (outcome, status). */
  startTimer(): (labels: Labels<N>) => number {
    const end = this.metric.startTimer();
    return (labels) => end(clampAll(this.sets, labels));
  }
}

export interface MetricsOptions extends LabelSetConfig {
  /** process_* and nodejs_* (CPU, memory, event loop lag, GC); off in tests that build many registries. */
  defaultMetrics?: boolean;
}

export type ScrapeHook = () => void | Promise<void>;

export function createMetrics(registry: Registry = new Registry(), options: MetricsOptions = {}) {
  const l = createLabelSets(options);
  const registers = [registry];
  const counter = <N extends string>(name: string, help: string, sets: LabelSets<N>) =>
    new BoundedCounter<N>(new Counter<N>({ name, help, labelNames: Object.keys(sets) as N[], registers }), sets);
  const gauge = <N extends string>(name: string, help: string, sets: LabelSets<N>) =>
    new BoundedGauge<N>(new Gauge<N>({ name, help, labelNames: Object.keys(sets) as N[], registers }), sets);
  const histogram = <N extends string>(name: string, help: string, buckets: number[], sets: LabelSets<N>) =>
    new BoundedHistogram<N>(new Histogram<N>({ name, help, buckets, labelNames: Object.keys(sets) as N[], registers }), sets);

  const hooks: ScrapeHook[] = [];
  const collectErrors = new Counter({
    name: 'nexo_metrics_collect_errors_total',
    help: 'Scrape-time collectors that failed; the scrape still answers with the figures it has.',
    registers,
  });

  const metrics = {
    registry,
    /** The closed label sets; `allow` on providers, chains, routes, projections and groups at start. */
    labels: l,

    otpRequested: counter('nexo_otp_requested_total', 'OTPs accepted and charged.', { carrier: l.carrier, channel: l.channel }),
    otpDelivered: counter('nexo_otp_delivered_total', 'OTPs settled as delivered, by the proof of delivery.', {
      carrier: l.carrier,
      channel: l.channel,
      via: l.via,
    }),
    otpRefunded: counter('nexo_otp_refunded_total', 'OTPs settled as refunded, by reason.', {
      carrier: l.carrier,
      channel: l.channel,
      reason: l.reason,
    }),
    otpDeliverySeconds: histogram(
      'nexo_otp_delivery_seconds',
      'Time from an OTP request being accepted to its delivery being proven.',
      OTP_DELIVERY_BUCKETS,
      { carrier: l.carrier, channel: l.channel },
    ),
    otpInFlight: new Gauge({ name: 'nexo_otp_in_flight', help: 'OTPs charged and not yet settled (delivered or refunded).', registers }),
    otpMonthDeliveryRatio: gauge(
      'nexo_otp_month_delivery_ratio',
      'Delivered / (delivered + refunded) OTPs requested in the current UTC month; target 0.9. Absent until one settles.',
      { carrier: l.carrier },
    ),
    otpMonthSettled: gauge('nexo_otp_month_settled', 'OTPs requested in the current UTC month that have settled.', { carrier: l.carrier }),

    carrierSubmitSeconds: histogram(
      'nexo_carrier_submit_seconds',
      'Duration of one submission to an upstream provider, until it accepted or failed.',
      CARRIER_SUBMIT_BUCKETS,
      { provider: l.provider, outcome: l.submitOutcome },
    ),
    carrierSubmitErrors: counter('nexo_carrier_submit_errors_total', 'Failed submissions to an upstream provider, by error code.', {
      provider: l.provider,
      code: l.carrierErrorCode,
    }),
    carrierReceipts: counter('nexo_carrier_receipts_total', 'Delivery receipts received from upstream providers, duplicates included.', {
      provider: l.provider,
      status: l.receiptStatus,
    }),

    httpRequestSeconds: histogram(
      'nexo_http_request_duration_seconds',
      'HTTP request duration by route template and status code.',
      HTTP_DURATION_BUCKETS,
      { method: l.method, route: l.route, status: l.httpStatus },
    ),

    eventstoreAppendSeconds: new Histogram({
      name: 'nexo_eventstore_append_seconds',
      help: 'Duration of one group commit of the event store (transaction and fsync), once per commit.',
      buckets: EVENTSTORE_APPEND_BUCKETS,
      registers,
    }),
    eventstoreBatchAppends: new Histogram({
      name: 'nexo_eventstore_batch_appends',
      help: 'Appends written together in one group commit.',
      buckets: EVENTSTORE_BATCH_BUCKETS,
      registers,
    }),

    commandStateLoadSeconds: histogram(
      'nexo_command_state_load_seconds',
      "Loads of an account's state by the command path (after a restart, a conflict, or its state leaving the cache), by whether a snapshot served: the time to read and fold it.",
      STATE_LOAD_BUCKETS,
      { snapshot: l.snapshot },
    ),
    commandSnapshotSeconds: new Histogram({
      name: 'nexo_command_snapshot_seconds',
      help: "Snapshots of a stream's state written by the command path: the time to encode and store one (on the thread that serves the stream).",
      buckets: STATE_LOAD_BUCKETS,
      registers,
    }),
    commandSnapshotErrors: new Counter({
      name: 'nexo_command_snapshot_errors_total',
      help: 'Snapshots that could not be written; the commands they followed are not affected, the next load folds more events.',
      registers,
    }),

    projectionLagEvents: gauge('nexo_projection_lag_events', 'Events in the log not yet applied by a projection in this process.', {
      projection: l.projection,
    }),
    projectionLagSeconds: gauge(
      'nexo_projection_lag_seconds',
      'Age of the oldest event in the log not yet applied by a projection in this process; 0 when caught up.',
      { projection: l.projection },
    ),
    busConsumerLag: gauge('nexo_bus_consumer_lag_messages', 'Messages behind the head, over the partitions this consumer owns.', {
      topic: l.topic,
      group: l.group,
    }),
    busHeld: gauge(
      'nexo_bus_held_messages',
      "Messages this process's consumers set aside (embedded bus, or a worker's Kafka consumers) because their key's handler kept failing; retried on their own backoff, part of the lag.",
      { topic: l.topic, group: l.group },
    ),

    relayLeading: new Gauge({
      name: 'nexo_relay_leading',
      help: 'Whether this process relays the event log to the bus now (1) or stands by (0); over all processes of a log, exactly one should be 1.',
      registers,
    }),

    threadRestarts: counter(
      'nexo_thread_restarts_total',
      'Service threads of the embedded default that died (a bug, their heap limit, their file failing) and were started again, by thread.',
      { thread: l.thread },
    ),

    webhookAttempts: counter('nexo_webhook_attempts_total', 'Webhook POST attempts, by outcome; anything but success is retried.', {
      outcome: l.webhookOutcome,
    }),
    webhookBacklog: new Gauge({
      name: 'nexo_webhook_backlog_deliveries',
      help: 'Webhook deliveries waiting for their first attempt or a retry.',
      registers,
    }),

    chainHeadBlock: gauge('nexo_chain_head_block', 'Latest block number the RPC node reports.', { chain: l.chain }),
    chainCursorBlock: gauge('nexo_chain_cursor_block', 'Last block the deposit listener has scanned.', { chain: l.chain }),
    chainConfirmationsLagBlocks: gauge(
      'nexo_chain_confirmations_lag_blocks',
      'Blocks with enough confirmations to credit that the listener has not scanned yet; 0 when caught up.',
      { chain: l.chain },
    ),
    depositsCredited: counter('nexo_deposits_credited_total', 'Stablecoin deposits credited to accounts.', { chain: l.chain, token: l.token }),
    depositsReversed: counter('nexo_deposits_reversed_total', 'Credited deposits reversed because their block left the canonical chain.', {
      chain: l.chain,
    }),
    depositsUncredited: counter(
      'nexo_deposits_uncredited_total',
      'Transfers to a deposit address the ledger cannot credit (mined again under a key credited and reversed before, I4): each needs an operator.',
      { chain: l.chain },
    ),

    /** Text-format content type for the /metrics response. */
    contentType: registry.contentType,

    /**
     * Runs `hook` before each scrape: figures read from projections (month
     * delivery ratio, in-flight count, webhook backlog) are set there, so they
     * cost nothing between scrapes.
     */
    beforeScrape(hook: ScrapeHook): void {
      hooks.push(hook);
    },

    /** The exposition text; a failing hook is counted and the rest is still served. */
    async render(): Promise<string> {
      const results = await Promise.allSettled(hooks.map(async (hook) => hook()));
      const failed = results.filter((r) => r.status === 'rejected').length;
      if (failed > 0) collectErrors.inc(failed);
      return registry.metrics();
    },
  };

  zeroOtpSeries(metrics, l);
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  return metrics;
}

export type NexoMetrics = ReturnType<typeof createMetrics>;

/**
 * The command runner's `onLoad` and `onSnapshot` (CommandRunner options), feeding the state-load and
 * snapshot series; `metrics` is read at each call (a process may create its registry after its runner).
 */
export function commandRunnerHooks(metrics: () => NexoMetrics | undefined, logger?: { warn(obj: object, msg: string): void }) {
  return {
    onLoad(load: { snapshot: (typeof STATE_LOAD_SNAPSHOT)[number]; seconds: number }): void {
      metrics()?.commandStateLoadSeconds.observe({ snapshot: load.snapshot }, load.seconds);
    },
    onSnapshot(snapshot: { seconds: number; error?: unknown }): void {
      if (snapshot.error === undefined) {
        metrics()?.commandSnapshotSeconds.observe(snapshot.seconds);
        return;
      }
      metrics()?.commandSnapshotErrors.inc();
      logger?.warn({ err: snapshot.error }, "could not write a snapshot of a stream's state; commands go on, the next load folds more events (retried in a minute)");
    },
  };
}

/**
 * Starts every carrier × channel OTP series at 0, so rates and ratios over
 * them exist from the first scrape instead of appearing with the first event
 * (a series born at 1 loses that first increment to rate()).
 */
function zeroOtpSeries(m: Pick<NexoMetrics, 'otpRequested' | 'otpDelivered' | 'otpRefunded'>, l: MetricLabels): void {
  for (const carrier of l.carrier.values()) {
    if (carrier === OTHER) continue;
    for (const channel of l.channel.values()) {
      if (channel === OTHER) continue;
      m.otpRequested.inc({ carrier, channel }, 0);
      for (const via of l.via.values()) if (via !== OTHER) m.otpDelivered.inc({ carrier, channel, via }, 0);
      for (const reason of l.reason.values()) if (reason !== OTHER) m.otpRefunded.inc({ carrier, channel, reason }, 0);
    }
  }
}
