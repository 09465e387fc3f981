/**
 * The operations files under infra/ against the real tools and against each
 * other: promtool checks the Prometheus config, the alert rules and their
 * unit tests (alerts.test.yml), lints the exposition createMetrics renders,
 * and parses every dashboard query; the names used by alerts and dashboard
 * must be metrics createMetrics defines; every alert links to a runbook
 * section that exists.
 *
 * promtool comes from the Debian package `prometheus` (.ci/run installs it).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { BUS_TOPICS, createMetrics } from './metrics.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PROM = join(ROOT, 'infra/prometheus');
const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8');

function promtool(args: string[], options: { cwd?: string; input?: string } = {}) {
  const run = spawnSync('promtool', args, { cwd: options.cwd ?? PROM, input: options.input, encoding: 'utf8', timeout: 60_000 });
  if ((run.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error('promtool is not on PATH: install it with `apt-get install prometheus` (Debian package; .ci/run does this in CI)');
  }
  if (run.error) throw run.error;
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

function expectSuccess(result: { status: number | null; output: string }): void {
  // The output is part of the failure message, so a broken rule shows promtool's own words.
  expect({ status: result.status, output: result.output }).toEqual({ status: 0, output: expect.any(String) });
}

interface AlertRule {
  name: string;
  block: string;
}
/** The alert blocks of alerts.yml, split on `- alert:`; enough structure for the checks below without a YAML dependency. */
function alertRules(): AlertRule[] {
  const text = read('infra/prometheus/alerts.yml');
  return text
    .split(/^\s*- alert: /m)
    .slice(1)
    .map((chunk) => ({ name: chunk.split('\n')[0]!.trim(), block: chunk.split(/^\s*- (?:alert|record): /m)[0]! }));
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const [, heading] of markdown.matchAll(/^#{1,6}\s+(.+)$/gm)) {
    out.add(
      heading!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    );
  }
  return out;
}

interface Panel {
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string; datasource?: { uid: string } }[];
}
const dashboard = () => JSON.parse(read('infra/grafana/dashboards/nexo.json')) as { uid: string; title: string; panels: Panel[] };
const dashboardExprs = () => dashboard().panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** Metric names an expression reads, leaving out functions, label names and aggregation clauses. */
function metricNames(expr: string): string[] {
  const withoutLabels = expr
    .replace(/\$__\w+/g, '')
    .replace(/\{[^}]*\}/g, '').replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  return [...withoutLabels.matchAll(/\b([a-z_][a-z0-9_]*(?::[a-z0-9_]+)*)\b(?!\s*\()/g)]
    .map((m) => m[1]!)
    .filter((n) => /_/.test(n) || n === 'up')
    .filter((n) => !/^(?:and|or|unless|offset|bool)$/.test(n));
}

describe('Prometheus configuration (promtool)', () => {
  it('prometheus.yml is a valid config and loads alerts.yml', () => {
    expectSuccess(promtool(['check', 'config', 'prometheus.yml']));
  });

  it('alerts.yml passes `promtool check rules`', () => {
    expectSuccess(promtool(['check', 'rules', 'alerts.yml']));
  });

  it('alerts.yml passes its unit tests (`promtool test rules alerts.test.yml`)', () => {
    expectSuccess(promtool(['test', 'rules', 'alerts.test.yml']));
  });

  it('the exposition of createMetrics passes `promtool check metrics` (naming lint)', async () => {
    const m = createMetrics(new Registry(), { defaultMetrics: false });
    m.otpDeliverySeconds.observe({ carrier: 'viettel', channel: 'sms' }, 4);
    m.httpRequestSeconds.observe({ method: 'GET', route: '/metrics', status: 200 }, 0.002);
    m.carrierSubmitSeconds.observe({ provider: 'simulator', outcome: 'ok' }, 0.05);
    m.eventstoreAppendSeconds.observe(0.001);
    m.eventstoreBatchAppends.observe(3);
    expectSuccess(promtool(['check', 'metrics'], { input: await m.render() }));
  });
});

describe('alert rules', () => {
  const rules = alertRules();
  const testFile = read('infra/prometheus/alerts.test.yml');

  it('cover every alert the issue asks for, and the ones added since', () => {
    expect(rules.map((r) => r.name).sort()).toEqual(
      [
        'NexoApiServerErrors',
        'NexoBusConsumerLagHigh',
        'NexoBusMessagesHeld',
        'NexoCarrierErrorRateHigh',
        'NexoChainListenerStalled',
        'NexoDeliveryRateBelowTarget',
        'NexoDeliveryRateTrendingBelowTarget',
        'NexoDepositNeedsOperator',
        'NexoProjectionLagHigh',
        'NexoProviderNoReceipts',
        'NexoRefundRateSpike',
        'NexoTargetDown',
        'NexoThreadRestarting',
        'NexoWebhookBacklogHigh',
      ].sort(),
    );
  });

  it('each carries a severity, a summary, a description and a runbook link to an existing section', () => {
    const docs = ['README.md'].filter((f) => existsSync(join(ROOT, f))).map(read);
    const known = anchors(docs.join('\n'));
    for (const { name, block } of rules) {
      expect({ name, severity: /severity: (critical|warning)\n/.test(block) }).toEqual({ name, severity: true });
      expect({ name, summary: /summary: ".+"/.test(block), description: /description: ".+"/.test(block) }).toEqual({
        name,
        summary: true,
        description: true,
      });
      const runbook = /runbook: README\.md#([a-z0-9-]+)/.exec(block)?.[1];
      expect({ name, runbook }).toEqual({ name, runbook: name.toLowerCase() });
      expect({ name, documented: known.has(runbook!) }).toEqual({ name, documented: true });
    }
  });

  it('each has a unit test where it fires and one where it must not', () => {
    for (const { name } of rules) {
      const cases = [...testFile.matchAll(new RegExp(`alertname: ${name}\\n\\s+exp_alerts:(.*)`, 'g'))].map((m) => m[1]!.trim());
      expect({ name, fires: cases.some((c) => c === ''), quiet: cases.some((c) => c === '[]') }).toEqual({ name, fires: true, quiet: true });
    }
  });
});

describe('names shared by metrics, alerts and dashboard', () => {
  const definedWith = async (defaultMetrics: boolean) => {
    const m = createMetrics(new Registry(), { defaultMetrics });
    const names = new Set<string>(['up']);
    for (const metric of await m.registry.getMetricsAsJSON()) {
      names.add(metric.name);
      if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix);
    }
    return names;
  };
  const recorded = new Set([...read('infra/prometheus/alerts.yml').matchAll(/- record: (\S+)/g)].map((m) => m[1]!));

  it('alerts read only metrics createMetrics defines or rules record', async () => {
    const defined = await definedWith(false);
    const exprs = [...read('infra/prometheus/alerts.yml').matchAll(/expr: (?:\|\n((?:\s{10,}.+\n)+)|(.+))/g)].map((m) => m[1] ?? m[2]!);
    expect(exprs.length).toBeGreaterThanOrEqual(16);
    expect(exprs.flatMap(metricNames)).toEqual(expect.arrayContaining(['nexo_chain_head_block', 'carrier:nexo_otp_refund_ratio:rate1d', 'up']));
    const unknown = exprs.flatMap(metricNames).filter((n) => !defined.has(n) && !recorded.has(n));
    expect(unknown).toEqual([]);
  });

  it('the dashboard reads only metrics createMetrics defines (default process metrics included) or rules record', async () => {
    const defined = await definedWith(true);
    expect(dashboardExprs().flatMap(({ expr }) => metricNames(expr))).toEqual(
      expect.arrayContaining(['nexo_otp_delivery_seconds_bucket', 'provider:nexo_carrier_submit_error_ratio:rate5m', 'process_resident_memory_bytes']),
    );
    const unknown = dashboardExprs().flatMap(({ panel, expr }) =>
      metricNames(expr)
        .filter((n) => !defined.has(n) && !recorded.has(n))
        .map((n) => `${panel}: ${n}`),
    );
    expect(unknown).toEqual([]);
  });
});

describe('Grafana dashboard', () => {
  it('every query is valid PromQL (parsed by promtool as recording rules)', () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(20);
    const dir = mkdtempSync(join(tmpdir(), 'nexo-dash-'));
    try {
      const rules = exprs
        .map(({ expr }, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(expr.replaceAll('$__rate_interval', '5m'))}`)
        .join('\n');
      writeFileSync(join(dir, 'dashboard.rules.yml'), `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
      expectSuccess(promtool(['check', 'rules', 'dashboard.rules.yml'], { cwd: dir }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('uses the provisioned data source and covers the figures SREs asked for', () => {
    const d = dashboard();
    const uid = /uid: (\S+)/.exec(read('infra/grafana/provisioning/datasources/prometheus.yml'))?.[1];
    const panels = d.panels.filter((p) => p.type !== 'row');
    expect(new Set(panels.flatMap((p) => [p.datasource?.uid, ...(p.targets ?? []).map((t) => t.datasource?.uid)]))).toEqual(new Set([uid]));
    const all = dashboardExprs()
      .map((e) => e.expr)
      .join('\n');
    for (const needed of [
      'nexo_otp_month_delivery_ratio',
      'vector(0.9)',
      'nexo_otp_requested_total',
      'nexo_otp_refunded_total',
      'histogram_quantile(0.95, sum by (le, carrier, channel) (rate(nexo_otp_delivery_seconds_bucket',
      'nexo_carrier_submit_errors_total',
      'histogram_quantile(0.99, sum by (le, route) (rate(nexo_http_request_duration_seconds_bucket',
      'nexo_projection_lag_seconds',
      'nexo_bus_consumer_lag_messages',
      'nexo_webhook_backlog_deliveries',
      'nexo_chain_head_block',
      'nexo_deposits_credited_total',
    ]) {
      expect({ needed, present: all.includes(needed) }).toEqual({ needed, present: true });
    }
  });
});

describe('compose and Kafka topics', () => {
  it('Prometheus scrapes services that docker-compose.yml defines', () => {
    const services = new Set([...read('docker-compose.yml').matchAll(/^ {2}([a-z][a-z0-9-]*):\s*$/gm)].map((m) => m[1]!));
    const config = read('infra/prometheus/prometheus.yml');
    const scraped = [
      ...[...config.matchAll(/names: \["([a-z0-9-]+)"\]/g)].map((m) => m[1]!),
      ...[...config.matchAll(/targets: \["([a-z0-9-]+):\d+"\]/g)].map((m) => m[1]!).filter((h) => h !== 'localhost'),
    ];
    expect(scraped.sort()).toEqual(['api', 'chain-listener', 'eventstore', 'relay', 'worker']);
    for (const service of [...scraped, 'prometheus', 'grafana', 'kafka', 'kafka-init']) {
      expect({ service, defined: services.has(service) }).toEqual({ service, defined: true });
    }
  });

  it('topics.sh creates exactly the bus topics, idempotently, with the given replication', () => {
    // The Kafka CLI needs a JVM and a broker, neither of which runs here: a stub records the calls.
    const dir = mkdtempSync(join(tmpdir(), 'nexo-topics-'));
    try {
      const log = join(dir, 'calls.log');
      const stub = join(dir, 'kafka-topics.sh');
      writeFileSync(stub, `#!/bin/sh\necho "$*" >> "${log}"\n`);
      chmodSync(stub, 0o755);
      const run = spawnSync('sh', [join(ROOT, 'infra/kafka/topics.sh')], {
        env: { PATH: process.env.PATH, KAFKA_TOPICS_BIN: stub, TOPICS_BOOTSTRAP: 'broker:9092', TOPICS_REPLICATION_FACTOR: '3' },
        encoding: 'utf8',
      });
      expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
      const creates = readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .filter((l) => l.includes('--create'));
      const topics = creates.map((l) => /--topic (\S+)/.exec(l)?.[1]);
      expect(topics.sort()).toEqual([...BUS_TOPICS].sort());
      for (const line of creates) {
        expect(line).toContain('--bootstrap-server broker:9092');
        expect(line).toContain('--if-not-exists');
        expect(line).toContain('--replication-factor 3');
        expect(line).toContain('--config min.insync.replicas=2');
        expect(line).toMatch(/--config retention\.ms=\d+/);
      }
      expect(creates.find((l) => l.includes('nexo.otp.dispatch'))).toContain('--partitions 12');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
