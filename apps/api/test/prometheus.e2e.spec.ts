/**
 * A real Prometheus (Debian's binary) scrapes a running embedded NEXO ROUTE on
 * loopback; the series must exist in Prometheus and its delivery-rate figure
 * must match the public stats endpoint.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '#testing';
import { freshPhone, get, post, signup, startServer, type TestServer } from './harness.js';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Prometheus refuses connections while it starts and fails queries until it has data: here a probe that throws means "not yet". */
const orNotYet = <T>(probe: () => Promise<T | undefined>) => (): Promise<T | undefined> => probe().catch(() => undefined);

describe('a real Prometheus scraping the embedded service', () => {
  let server: TestServer;
  let prometheus: ChildProcess;
  let promBase: string;
  let dir: string;

  beforeAll(async () => {
    if (spawnSync('prometheus', ['--version']).status !== 0) {
      throw new Error('the prometheus binary is missing: apt-get install prometheus (.ci/run installs it)');
    }
    server = await startServer({
      NEXO_CARRIERS: JSON.stringify({
        providers: [{ kind: 'simulator', name: 'simulator', simulator: { timeScale: 0.001, failureRate: 0.3, lostReceiptRate: 0, seed: 7 } }],
      }),
    });
    dir = mkdtempSync(join(tmpdir(), 'nexo-prom-'));
    const target = server.base.replace('http://', '');
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: nexo-api\n    static_configs:\n      - targets: ['${target}']\n`,
    );
    const port = await freePort();
    promBase = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      'prometheus',
      [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: 'ignore' },
    );
    await until(
      'prometheus ready',
      orNotYet(async () => ((await fetch(`${promBase}/-/ready`)).ok ? true : undefined)),
      { timeoutMs: 30_000, everyMs: 200 },
    );
  }, 60_000);

  afterAll(async () => {
    prometheus?.kill('SIGTERM');
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('has the series, and its month delivery ratio equals GET /api/v1/stats/public', async () => {
    const { api_key } = await signup(server.base);
    for (let i = 0; i < 5; i++) {
      const r = await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '123456' });
      expect(r.status).toBe(200);
    }
    const stats = await until(
      'all five settled',
      orNotYet(async () => {
        const s = await (await get(server.base, '/api/v1/stats/public')).json();
        return s.by_carrier?.viettel?.in_flight === 0 && s.by_carrier.viettel.sent >= 5 ? s : undefined;
      }),
      { timeoutMs: 30_000, everyMs: 200 },
    );
    const query = async (q: string) => {
      const body = await (await fetch(`${promBase}/api/v1/query?query=${encodeURIComponent(q)}`)).json();
      expect(body.status).toBe('success');
      return body.data.result as { metric: Record<string, string>; value: [number, string] }[];
    };
    // Wait for a scrape that happened after the last settlement.
    const expected = stats.by_carrier.viettel.delivery_rate as number;
    const ratio = await until(
      'ratio scraped',
      orNotYet(async () => {
        const r = await query('nexo_otp_month_delivery_ratio{carrier="viettel"}');
        return r.length === 1 && Math.abs(Number(r[0].value[1]) - expected) < 1e-9 ? r : undefined;
      }),
      { timeoutMs: 30_000, everyMs: 200 },
    );
    expect(Number(ratio[0].value[1])).toBeCloseTo(expected, 9);
    for (const series of ['nexo_otp_requested_total', 'nexo_http_request_duration_seconds_count', 'nexo_carrier_submit_seconds_count', 'nexo_projection_lag_events', 'process_resident_memory_bytes']) {
      expect((await query(series)).length).toBeGreaterThan(0);
    }
    const requested = await query('sum(nexo_otp_requested_total{carrier="viettel"})');
    expect(Number(requested[0].value[1])).toBeGreaterThanOrEqual(5);
  }, 90_000);
});
