/**
 * bench:pipeline: the whole delivery pipeline on the embedded default (SQLite
 * log, in-process bus, every worker in the API's process) with a zero-latency
 * carrier simulator, from `POST /api/v1/send-otp` to the signed webhook on a
 * local endpoint. The service runs in its own process (dist/apps/api/src/main.js,
 * i.e. createApp), so the load generator and the webhook endpoint here do not
 * share its event loop; every figure comes from the service's own log
 * (OtpRequested, Routed, ReceiptReceived, Delivered/Refunded and their commit
 * times) and from the endpoint's receive times, on the same clock.
 *
 * Runs, each on a fresh data dir: the ceiling (the API alone, workers off, at
 * full speed), 1,000 OTPs/s offered as independent arrivals (see offerArrivals),
 * and full speed with the workers on.
 *
 *   node dist/bench/pipeline.bench.js
 *   BENCH_RATE=1000 BENCH_SECONDS=10 BENCH_MAX_OTPS=20000 node dist/bench/pipeline.bench.js
 *   BENCH_PROF=/tmp/prof node dist/bench/pipeline.bench.js     CPU profiles of the service, one per run
 *   BENCH_METRICS=1 node dist/bench/pipeline.bench.js          also print the service's event-loop delay and group commits (or BENCH_METRICS=<regexp>)
 *   BENCH_ONLY=full node dist/bench/pipeline.bench.js          only the full-speed run (A/B of a change; or BENCH_ONLY=paced)
 *   BENCH_STAGES=1 node dist/bench/pipeline.bench.js           also split settled → webhook received with the sender's rows (webhooks.db; only webhooks that waited for their endpoint have one)
 *   BENCH_TIMELINE=1 node dist/bench/pipeline.bench.js         also receipt → webhook received per 500 ms of receipts, with each stage's slowest (a steady tail, or a few bursts?)
 *   BENCH_WARMUP_OTPS=6000 BENCH_WARMUP_RATE=2000 node dist/bench/pipeline.bench.js   another warm-up than 1,500 OTPs at 500/s (the figures of record keep that one)
 *   BENCH_NODE_FLAGS=--trace-gc BENCH_STDOUT=/tmp/gc.log node dist/bench/pipeline.bench.js   the service with more node flags, its stdout appended to a file
 *   BENCH_NODE_FLAGS="--import ./bench/count-statements.mjs" node dist/bench/pipeline.bench.js   SQLite statements per thread, by SQL (work per OTP, whatever the machine's speed)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { CommandRunner, SqliteEventStore } from '#eventstore';
import { freePort } from '#testing';
import { AesGcmCipher, newWebhookSecret } from '#security';
import { seedFundedAccounts } from '../libs/eventstore/src/testing/seed-accounts.js';
import { cpuPerItem, cpuSample, offerArrivals, percentile as pct, sendOtpRequests, serviceCommand } from './service.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const ACCOUNTS = 100;
const CONNECTIONS = 64;
const PACED_RATE = Number(process.env.BENCH_RATE ?? 1_000);
const PACED_SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const MAX_OTPS = Number(process.env.BENCH_MAX_OTPS ?? 20_000);
const SETTLE_TIMEOUT_MS = 180_000;
/** Sent before each run's measured load, and left out of its figures (they still count in the lost / double-settled checks). */
const WARMUP_OTPS = Number(process.env.BENCH_WARMUP_OTPS ?? 1_500);
const WARMUP_RATE = Number(process.env.BENCH_WARMUP_RATE ?? 500);
const AT = new Date().toISOString();
const ZERO_LATENCY = { providers: [{ kind: 'simulator', name: 'simulator', simulator: { timeScale: 0, failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0 } }] };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Hook {
  otpId: string;
  type: string;
  receivedAt: number;
}

/**
 * The customers' endpoint, which every account's webhook points at. It runs on
 * a thread of its own: sharing autocannon's event loop would add the load
 * generator's stalls to the webhook latency being measured.
 */
const ENDPOINT = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
const hooks = [];
const handler = (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const receivedAt = Date.now();
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    hooks.push({ otpId: body.id, type: body.type, receivedAt });
    res.writeHead(204).end();
  });
};
// One endpoint per customer, as in production: the sender's per-endpoint cap applies per account.
const servers = Array.from({ length: Number(process.env.ENDPOINTS) }, () => {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 30000;
  return server;
});
Promise.all(servers.map((s) => new Promise((r) => s.listen(0, '127.0.0.1', r)))).then(() =>
  parentPort.postMessage({ ports: servers.map((s) => s.address().port) }),
);
parentPort.on('message', (m) => {
  if (m === 'hooks') parentPort.postMessage({ hooks });
  if (m === 'close') {
    let open = servers.length;
    for (const s of servers) { s.closeAllConnections(); s.close(() => { if (--open === 0) process.exit(0); }); }
  }
});
`;

async function webhookEndpoint(): Promise<{ urls: string[]; hooks(): Promise<Hook[]>; close(): Promise<void> }> {
  const worker = new Worker(ENDPOINT, { eval: true, env: { ENDPOINTS: String(ACCOUNTS) } });
  const next = <T>() => new Promise<T>((resolve) => worker.once('message', resolve));
  const { ports } = await next<{ ports: number[] }>();
  return {
    urls: ports.map((port) => `http://127.0.0.1:${port}/hooks`),
    async hooks() {
      const answer = next<{ hooks: Hook[] }>();
      worker.postMessage('hooks');
      return (await answer).hooks;
    },
    async close() {
      const exited = new Promise((r) => worker.once('exit', r));
      worker.postMessage('close');
      await exited;
    },
  };
}

/** Opened, keyed, funded accounts with a webhook, written before the service starts (signup gives only 5 test credits). */
async function seedAccounts(file: string, cipher: AesGcmCipher, hookUrls: string[]): Promise<string[]> {
  const store = SqliteEventStore.open(file);
  const keys = await seedFundedAccounts(new CommandRunner(store), {
    count: ACCOUNTS,
    prefix: 'pipe',
    depositMicros: 1_000_000n * 1_000_000n,
    at: AT,
    extra: (i, at) => [{ type: 'ConfigureWebhook', url: hookUrls[i % hookUrls.length], secret: cipher.seal(newWebhookSecret()), at }],
  });
  await store.close();
  return keys;
}

async function startService(dir: string, env: Record<string, string>): Promise<{ child: ChildProcess; base: string }> {
  const port = await freePort();
  const prof = process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROF] : [];
  const service = serviceCommand(ROOT);
  const stdout = process.env.BENCH_STDOUT ? openSync(process.env.BENCH_STDOUT, 'a') : 'ignore';
  const child = spawn(process.execPath, [...service.flags, ...(process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []), ...prof, 'dist/apps/api/src/main.js'], {
    cwd: ROOT,
    env: { ...process.env, ...service.env, NEXO_DATA_DIR: dir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', NEXO_KEY_RATE_PER_SECOND: '100000', NEXO_KEY_BURST: '100000',
      // The customers' endpoints here listen on loopback, which a production service refuses.
      NEXO_WEBHOOK_PRIVATE_ADDRESSES: 'allow', ...env },
    stdio: ['ignore', stdout, 'inherit'],
  });
  if (typeof stdout === 'number') child.once('exit', () => closeSync(stdout));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${base}/health/ready`)).status === 200) return { child, base };
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error('service did not become ready');
}

async function stopService(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

interface Load {
  accepted: number;
  refused: number;
  errors: number;
  seconds: number;
}

/** `rate`: independent arrivals at that average rate (see offerArrivals); otherwise as fast as the connections go. */
async function load(base: string, keys: string[], opts: { amount: number; rate?: number }): Promise<Load> {
  if (opts.rate) return offerArrivals(base, keys, { rate: opts.rate, total: opts.amount, connections: CONNECTIONS });
  const started = performance.now();
  const r = await autocannon({
    url: base,
    connections: CONNECTIONS,
    amount: opts.amount,
    requests: sendOtpRequests(keys),
  });
  return { accepted: r['2xx'], refused: r.non2xx, errors: r.errors + r.timeouts, seconds: (performance.now() - started) / 1000 };
}

interface Figures {
  otps: number;
  lost: number;
  doubleSettled: number;
  delivered: number;
  settledPerSecond: number;
  acceptedPerSecond: number;
  toSubmit: number[];
  /** accepted (the handler's clock) → OtpRequested committed: the API's own share of accepted → submitted. */
  toCommit: number[];
  toWebhook: number[];
  /** receipt → ReceiptReceived committed → Delivered committed → webhook received. */
  stages: Stages;
  missingWebhooks: number;
}

interface Stages {
  recorded: number[];
  settled: number[];
  sent: number[];
}

/** Everything from the raw log, read after the service stopped. */
/** `since`: the measured load's start; OTPs accepted before it (the warm-up) count only in the lost / double-settled / missing-webhook checks. */
function analyse(file: string, hooks: Hook[], since: number): Figures {
  const db = new Database(file, { readonly: true });
  const rows = db
    .prepare<[], { type: string; stream_id: string; data: string; created: number }>(
      `SELECT type, stream_id, data, created FROM events WHERE type IN ('OtpRequested', 'Routed', 'ReceiptReceived', 'Delivered', 'Refunded') ORDER BY position`,
    )
    .all();
  db.close();
  const otps = new Map<
    string,
    { at: number; created: number; routedAt?: number; receiptAt?: number; receiptCreated?: number; settled: number; settledCreated?: number; delivered: boolean }
  >();
  for (const r of rows) {
    const d = JSON.parse(r.data) as { otpId?: string; at: string };
    if (r.type === 'OtpRequested') otps.set(d.otpId!, { at: Date.parse(d.at), created: r.created, settled: 0, delivered: false });
    else if (r.type === 'Delivered' || r.type === 'Refunded') {
      const o = otps.get(d.otpId!)!;
      o.settled++;
      o.settledCreated ??= r.created;
      if (r.type === 'Delivered') o.delivered = true;
    } else {
      const o = otps.get(r.stream_id.slice('otp-'.length));
      if (o && r.type === 'Routed') o.routedAt ??= Date.parse(d.at);
      if (o && r.type === 'ReceiptReceived' && o.receiptAt === undefined) {
        o.receiptAt = Date.parse(d.at);
        o.receiptCreated = r.created;
      }
    }
  }
  const delivered = new Map<string, number>();
  for (const h of hooks) if (h.type === 'otp.delivered' && !delivered.has(h.otpId)) delivered.set(h.otpId, h.receivedAt);
  const everyOtp = [...otps.values()];
  const all = everyOtp.filter((o) => o.at >= since);
  const routed = all.filter((o) => o.routedAt !== undefined);
  const toSubmit = routed.map((o) => o.routedAt! - o.at).sort((a, b) => a - b);
  const toCommit = routed.map((o) => o.created - o.at).sort((a, b) => a - b);
  const toWebhook: number[] = [];
  const stages: Stages = { recorded: [], settled: [], sent: [] };
  let missingWebhooks = 0;
  for (const [otpId, o] of otps) {
    if (!o.delivered) continue;
    const got = delivered.get(otpId);
    if (got === undefined || o.receiptAt === undefined) {
      missingWebhooks++;
      continue;
    }
    if (o.at < since) continue;
    toWebhook.push(got - o.receiptAt);
    stages.recorded.push(o.receiptCreated! - o.receiptAt);
    stages.settled.push(o.settledCreated! - o.receiptCreated!);
    stages.sent.push(got - o.settledCreated!);
  }
  if (process.env.BENCH_STAGES) {
    // The sender's own times: when it recorded the delivery row, and when it saw the endpoint's answer.
    const w = new Database(file.replace(/nexo\.db$/, 'webhooks.db'), { readonly: true });
    const rowsW = w.prepare<[], { otp_id: string; created_ms: number; delivered_ms: number | null }>("SELECT otp_id, created_ms, delivered_ms FROM webhook_deliveries WHERE type = 'otp.delivered'").all();
    w.close();
    const a: number[] = [], b: number[] = [], c: number[] = [];
    for (const r of rowsW) {
      const o = otps.get(r.otp_id);
      const got = delivered.get(r.otp_id);
      if (!o || o.at < since || !o.settledCreated || got === undefined || r.delivered_ms === null) continue;
      a.push(r.created_ms - o.settledCreated);
      b.push(got - r.created_ms);
      c.push(r.delivered_ms - got);
    }
    for (const l of [a, b, c]) l.sort((x, y) => x - y);
    const q = (l: number[], p: number) => l[Math.min(l.length - 1, Math.floor((p / 100) * l.length))];
    const p509099 = (l: number[]) => `${q(l, 50)}/${q(l, 90)}/${q(l, 99)}`;
    // The sender posts a new event first and writes a row only when it must wait for its endpoint
    // (or retry): only those webhooks have these times.
    const measured = [...otps.values()].filter((o) => o.at >= since && o.delivered).length;
    process.stdout.write(
      `delivered webhooks written before their POST (their endpoint busy): ${a.length} of ${measured}` +
        (a.length > 0 ? `; for those, settled → webhook received, p50/p90/p99 ms: → delivery row recorded ${p509099(a)}, → POST received ${p509099(b)}; received → answer seen by the sender ${p509099(c)}` : '') +
        '\n',
    );
  }
  if (process.env.BENCH_TIMELINE) {
    // Receipt → webhook received per 500 ms of receipts: a steady tail or a few bursts?
    // Each point: receipt time, then receipt → webhook and its three stages (recorded, settled, sent).
    const points: [number, number, number, number, number][] = [];
    for (const [otpId, o] of otps) {
      const got = delivered.get(otpId);
      if (o.at >= since && o.delivered && got !== undefined && o.receiptAt !== undefined)
        points.push([o.receiptAt, got - o.receiptAt, o.receiptCreated! - o.receiptAt, o.settledCreated! - o.receiptCreated!, got - o.settledCreated!]);
    }
    const t0 = Math.min(...points.map((p) => p[0]));
    const buckets = new Map<number, (typeof points)[number][]>();
    for (const p of points) {
      const b = Math.floor((p[0] - t0) / 500);
      const list = buckets.get(b);
      if (list) list.push(p);
      else buckets.set(b, [p]);
    }
    const line = [...buckets].sort((a, b) => a[0] - b[0]).map(([b, l]) => {
      const col = (i: number) => l.map((p) => p[i]).sort((x, y) => x - y);
      const total = col(1);
      const stageMax = [2, 3, 4].map((i) => col(i)[l.length - 1]).join('/');
      return `${(b / 2).toFixed(1)}s n=${l.length} p50=${total[Math.floor(l.length / 2)]} max=${total[l.length - 1]} (stage max recorded/settled/sent ${stageMax})`;
    });
    process.stdout.write(`receipt → webhook per 500 ms of receipts:\n  ${line.join('\n  ')}\n`);
  }
  if (process.env.BENCH_OUTLIERS) {
    const t0 = Math.min(...all.map((o) => o.created));
    const slow = (label: string, items: [number, number][]) =>
      process.stdout.write(`${label}: ${items.sort((a, b) => b[1] - a[1]).slice(0, 40).sort((a, b) => a[0] - b[0]).map(([t, v]) => `${((t - t0) / 1000).toFixed(2)}s:${v}`).join(' ')}\n`);
    slow('slowest submits (at: ms)', routed.map((o) => [o.at, o.routedAt! - o.at]));
    slow('slowest webhook sends after settled', [...otps].filter(([id, o]) => o.delivered && delivered.has(id)).map(([id, o]) => [o.settledCreated!, delivered.get(id)! - o.settledCreated!]));
  }
  for (const list of [toWebhook, stages.recorded, stages.settled, stages.sent]) list.sort((a, b) => a - b);
  const firstCreated = Math.min(...all.map((o) => o.created));
  const lastAccepted = Math.max(...all.map((o) => o.created));
  const lastSettled = Math.max(...all.map((o) => o.settledCreated ?? 0));
  return {
    otps: all.length,
    lost: everyOtp.filter((o) => o.settled === 0).length,
    doubleSettled: everyOtp.filter((o) => o.settled > 1).length,
    delivered: all.filter((o) => o.delivered).length,
    settledPerSecond: all.length / Math.max(0.001, (lastSettled - firstCreated) / 1000),
    acceptedPerSecond: all.length / Math.max(0.001, (lastAccepted - firstCreated) / 1000),
    toSubmit,
    toCommit,
    toWebhook,
    stages,
    missingWebhooks,
  };
}

/** Until every accepted OTP (`accepted` in all) is settled and every delivered one's webhook has arrived. */
async function waitSettled(base: string, endpoint: { hooks(): Promise<Hook[]> }, accepted: number): Promise<void> {
  const month = new Date().toISOString().slice(0, 7);
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const stats = (await (await fetch(`${base}/api/v1/stats/public?month=${month}`)).json()) as { sent: number; delivered: number; in_flight: number };
    const hooksIn = (await endpoint.hooks()).filter((h) => h.type === 'otp.delivered').length;
    if (stats.sent >= accepted && stats.in_flight === 0 && hooksIn >= stats.delivered) return;
    if (Date.now() > deadline) {
      process.stdout.write(`  gave up waiting after ${SETTLE_TIMEOUT_MS / 1000} s: ${JSON.stringify(stats)}, ${hooksIn} delivered webhooks\n`);
      return;
    }
    await sleep(200);
  }
}

interface Run {
  load: Load;
  figures?: Figures;
  /** CPU time the service used (all threads, then its main thread) from the measured load's start until all was settled, per OTP of that load (µs). */
  cpu?: string;
  benchCpu?: number;
}


async function run(opts: { workers: boolean; amount: number; rate?: number }): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'nexo-bench-pipeline-'));
  const file = join(dir, 'nexo.db');
  const cipherKey = randomBytes(32);
  const endpoint = await webhookEndpoint();
  const keys = await seedAccounts(file, new AesGcmCipher({ k1: cipherKey }, 'k1'), endpoint.urls);
  const { child, base } = await startService(dir, {
    NEXO_CIPHER_KEYS: `k1:${cipherKey.toString('hex')}`,
    NEXO_PHONE_PEPPER: randomBytes(32).toString('hex'),
    NEXO_CARRIERS: JSON.stringify(ZERO_LATENCY),
    NEXO_WORKERS: opts.workers ? 'embedded' : 'off',
  });
  try {
    // A service that has been up a while: JIT warm, account states loaded, every stage run before.
    const warm = await offerArrivals(base, keys, { rate: WARMUP_RATE, total: WARMUP_OTPS, connections: CONNECTIONS });
    if (opts.workers) await waitSettled(base, endpoint, warm.accepted);
    const since = Date.now();
    const cpuBefore = cpuSample(child.pid);
    const benchBefore = process.cpuUsage();
    const l = await load(base, keys, opts);
    if (!opts.workers) return { load: l };
    await waitSettled(base, endpoint, warm.accepted + l.accepted);
    const cpuAfter = cpuSample(child.pid);
    const bench = process.cpuUsage(benchBefore);
    const cpu = cpuBefore && cpuAfter ? cpuPerItem(cpuBefore, cpuAfter, l.accepted, 'OTP') : undefined;
    // What the load generator and the customers' webhook endpoints (this process) took of the same cores.
    const benchCpu = Math.round((bench.user + bench.system) / l.accepted);
    if (process.env.BENCH_METRICS) {
      // The service's own view of where time went: event-loop delay, group commits, projection lag.
      const text = await (await fetch(`${base}/metrics`)).text();
      const wanted = new RegExp(process.env.BENCH_METRICS === '1' ? 'eventloop_lag|append_seconds_(sum|count)|batch_appends_(sum|count)' : process.env.BENCH_METRICS);
      process.stdout.write(`${text.split('\n').filter((line) => !line.startsWith('#') && wanted.test(line)).join('\n')}\n`);
    }
    await stopService(child);
    return { load: l, figures: analyse(file, await endpoint.hooks(), since), cpu, benchCpu };
  } finally {
    await stopService(child);
    await endpoint.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const ms = (v: number) => (Number.isNaN(v) ? 'n/a' : `${v} ms`);

function report(name: string, r: Run, goals: { submitP99?: boolean; webhookP99?: boolean; settledRate?: boolean }, ceiling?: number): string[] {
  const f = r.figures!;
  const lines = [
    `${name}: ${r.load.accepted.toLocaleString('en-US')} accepted (${r.load.refused} refused, ${r.load.errors} errors) in ${r.load.seconds.toFixed(1)} s = ${Math.round(f.acceptedPerSecond)} accepted/s; ${f.delivered.toLocaleString('en-US')} delivered`,
    `  settled end to end: ${Math.round(f.settledPerSecond)} OTPs/s from the first accepted to the last settled${goals.settledRate ? ' (goal ≥ 2,000/s)' : ''}${ceiling ? `; ${((100 * f.settledPerSecond) / ceiling).toFixed(0)}% of the ceiling` : ''}`,
    `  accepted → submitted: p50 ${ms(pct(f.toSubmit, 50))}, p99 ${ms(pct(f.toSubmit, 99))}, max ${ms(f.toSubmit[f.toSubmit.length - 1])}${goals.submitP99 ? ' (goal p99 < 50 ms)' : ''}`,
    `    of which: accepted → committed to the log p50/p99 ${pct(f.toCommit, 50)}/${pct(f.toCommit, 99)} ms`,
    `  receipt → webhook received: p50 ${ms(pct(f.toWebhook, 50))}, p99 ${ms(pct(f.toWebhook, 99))}, max ${ms(f.toWebhook[f.toWebhook.length - 1])}${goals.webhookP99 ? ' (goal p99 < 100 ms)' : ''}`,
    `    of which: receipt → recorded p50/p99 ${pct(f.stages.recorded, 50)}/${pct(f.stages.recorded, 99)} ms, → settled ${pct(f.stages.settled, 50)}/${pct(f.stages.settled, 99)} ms, → webhook received ${pct(f.stages.sent, 50)}/${pct(f.stages.sent, 99)} ms`,
    `  lost ${f.lost}, double-settled ${f.doubleSettled}, delivered without a webhook ${f.missingWebhooks} (goal: 0, 0, 0; over every OTP of the run, the warm-up's too)`,
  ];
  if (r.cpu) lines.push(`  service CPU: ${r.cpu}, from the load's start until all was settled`);
  if (r.benchCpu !== undefined) lines.push(`  the bench's own CPU (load generator, webhook endpoints) over the same stretch: ${r.benchCpu} µs per OTP`);
  if (f.otps !== r.load.accepted) lines.push(`  WARNING: ${f.otps} OTPs in the log, ${r.load.accepted} accepted answers`);
  return lines;
}

async function main(): Promise<void> {
  const out: string[] = [];
  const loadBefore = loadavg().map((v) => v.toFixed(2)).join(' ');
  const only = process.env.BENCH_ONLY;
  if (only !== undefined && only !== 'full' && only !== 'paced') throw new Error(`BENCH_ONLY must be full or paced, got ${only}`);
  let ceilingRate: number | undefined;
  if (!only) {
    const ceiling = await run({ workers: false, amount: MAX_OTPS });
    ceilingRate = ceiling.load.accepted / ceiling.load.seconds;
    out.push(`ceiling: the API alone (workers off) accepts ${Math.round(ceilingRate)} OTPs/s (${MAX_OTPS.toLocaleString('en-US')} sends, ${CONNECTIONS} connections)`);
  }
  const runs: Run[] = [];
  if (!only || only === 'paced') {
    const paced = await run({ workers: true, amount: PACED_RATE * PACED_SECONDS, rate: PACED_RATE });
    out.push(...report(`${PACED_RATE.toLocaleString('en-US')}/s offered for ${PACED_SECONDS} s (independent arrivals)`, paced, { submitP99: true, webhookP99: true }));
    runs.push(paced);
  }
  if (!only || only === 'full') {
    const max = await run({ workers: true, amount: MAX_OTPS });
    out.push(...report(`full speed, ${MAX_OTPS.toLocaleString('en-US')} sends on ${CONNECTIONS} connections`, max, { settledRate: true, webhookP99: true }, ceilingRate));
    runs.push(max);
  }
  const loadAfter = loadavg().map((v) => v.toFixed(2)).join(' ');
  process.stdout.write(
    `bench:pipeline (embedded default, synchronous=FULL log, zero-latency simulator; ${ACCOUNTS} funded accounts with a webhook endpoint each on loopback, distinct phones, SMS; each run starts with ${WARMUP_OTPS.toLocaleString('en-US')} OTPs at ${WARMUP_RATE}/s, settled before the measured load and outside its figures)\n` +
      `machine: load average ${loadBefore} before, ${loadAfter} after (1/5/15 min)\n${out.join('\n')}\n`,
  );
  const failed = runs.some((r) => !r.figures || r.figures.lost > 0 || r.figures.doubleSettled > 0);
  if (failed) process.exitCode = 1;
}

await main();
