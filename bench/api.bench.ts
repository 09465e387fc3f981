/**
 * bench:api: POST /api/v1/send-otp under load, over many distinct phones and
 * many funded accounts, against a bare Fastify route on the same machine
 * measured in the same run as the ceiling. The server runs in its own process
 * (the embedded default, durable appends); autocannon runs in this one.
 *
 *   npm run bench:api                      burst + sustained
 *   BENCH_MILLION=1 npm run bench:api      also drive 1,000,000 accepted OTPs and report RSS
 *   BENCH_TOTAL=300000 BENCH_HEAP=/tmp/h   a heap snapshot of the service's main thread after 300,000 sends
 *   BENCH_OUTLIERS=1                       the burst's slowest sends, by when they were due
 *   BENCH_WORKERS=off                      the API alone (no delivery pipeline in the process)
 *   BENCH_CONNECTIONS=128                  the sustained run and its ceiling on that many connections (default 64, the figure of record)
 *   BENCH_KEYED=1                          every send with an Idempotency-Key of its own (the main thread's heap with keys)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { CommandRunner, SqliteEventStore } from '#eventstore';
import { freePort } from '#testing';
import { seedFundedAccounts } from '../libs/eventstore/src/testing/seed-accounts.js';
import { cpuPerItem, cpuSample, offerArrivals, percentile, sendOtpRequests, serviceCommand } from './service.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const ACCOUNTS = 200;
const SUSTAINED_SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
/** A customer's backend sending a burst through a pool of this many keep-alive connections. */
const BURST_CONNECTIONS = Number(process.env.BENCH_BURST_CONNECTIONS ?? 50);
const AT = new Date().toISOString();

async function seedAccounts(file: string): Promise<string[]> {
  const store = SqliteEventStore.open(file);
  const keys = await seedFundedAccounts(new CommandRunner(store), { count: ACCOUNTS, prefix: 'bench', testCredits: 5, depositMicros: 1_000_000n * 1_000_000n, at: AT });
  await store.close();
  return keys;
}

/** The store's group-commit counters from the service's /metrics: commits so far and appends in them. */
async function groupCommits(base: string): Promise<{ commits: number; appends: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { commits: value('nexo_eventstore_batch_appends_count'), appends: value('nexo_eventstore_batch_appends_sum') };
}

async function waitReady(base: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${base}/health/ready`);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server did not become ready');
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

interface Run {
  accepted: number;
  non2xx: number;
  errors: number;
  seconds: number;
  p50: number;
  p99: number;
}

async function load(url: string, keys: string[], opts: { amount?: number; duration?: number; overallRate?: number; connections: number }): Promise<Run> {
  const started = performance.now();
  const r = await autocannon({
    url,
    connections: opts.connections,
    ...(opts.amount ? { amount: opts.amount } : {}),
    ...(opts.duration ? { duration: opts.duration } : {}),
    ...(opts.overallRate ? { overallRate: opts.overallRate } : {}),
    requests: sendOtpRequests(keys),
  });
  return {
    accepted: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    seconds: (performance.now() - started) / 1000,
    p50: r.latency.p50,
    p99: r.latency.p99,
  };
}

function spawnNode(args: string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
}

const BARE = `
import Fastify from 'fastify';
const app = Fastify({ bodyLimit: 16384 });
app.post('/api/v1/send-otp', async (req) => ({ ok: true, id: 'x', phone: req.body.phone }));
app.get('/health/ready', async () => ({ ok: true }));
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nexo-bench-api-'));
  const keys = await seedAccounts(join(dir, 'nexo.db'));
  const out: string[] = [];

  const barePort = await freePort();
  const bare = spawnNode(['--input-type=module', '-e', BARE], { PORT: String(barePort) });
  const bareBase = `http://127.0.0.1:${barePort}`;
  await waitReady(bareBase, bare);
  await load(bareBase, keys, { duration: 2, connections: CONNECTIONS });
  // The same bursts against the bare route: how much of their latency the load generator itself adds.
  const bareBurst = await offerArrivals(bareBase, keys, { rate: 1_000, total: 1_000, connections: BURST_CONNECTIONS });
  const bareBackToBack = await load(bareBase, keys, { amount: 1_000, overallRate: 1_000, connections: BURST_CONNECTIONS });
  const ceiling = await load(bareBase, keys, { duration: SUSTAINED_SECONDS, connections: CONNECTIONS });
  bare.kill('SIGTERM');
  const ceilingRate = ceiling.accepted / ceiling.seconds;

  const port = await freePort();
  const prof = process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROF] : [];
  // BENCH_HEAP=dir: a heap snapshot of the main thread into dir once the sends are done (SIGUSR2).
  const heap = process.env.BENCH_HEAP ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${process.env.BENCH_HEAP}`] : [];
  const service = serviceCommand(ROOT);
  const server = spawnNode([...service.flags, ...prof, ...heap, 'dist/apps/api/src/main.js'], {
    ...service.env,
    NEXO_DATA_DIR: dir,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    ...(process.env.BENCH_WORKERS ? { NEXO_WORKERS: process.env.BENCH_WORKERS } : {}),
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitReady(base, server);
    // A server that has been up a while: JIT warm, page cache and account states loaded.
    await load(base, keys, { duration: 3, overallRate: 500, connections: 32 });
    // How the client's connection count shapes the burst's latency (the load generator's share shows on the bare route too).
    if (process.env.BENCH_BURST_SHAPES) {
      for (const c of [10, 25, 50, 100]) {
        const r = await load(base, keys, { amount: 1_000, overallRate: 1_000, connections: c });
        process.stdout.write(`shape ${c} connections: p50 ${r.p50} p99 ${r.p99} accepted ${r.accepted}\n`);
        await new Promise((res) => setTimeout(res, 1000));
      }
    }
    // The market event: 1,000 customers' users arriving independently within one second.
    const burst = await offerArrivals(base, keys, { rate: 1_000, total: 1_000, connections: BURST_CONNECTIONS });
    const ms = (sorted: number[], p: number) => Math.round(percentile(sorted, p));
    out.push(
      `burst: 1,000 sends arriving in one second (independent arrivals, ${BURST_CONNECTIONS} connections): ${burst.accepted} accepted, ${burst.refused} refused, ${burst.errors} errors in ${burst.seconds.toFixed(2)} s; p50 ${ms(burst.latencies, 50)} ms, p99 ${ms(burst.latencies, 99)} ms (goal: all accepted, p99 < 50 ms); the same arrivals on the bare route: p50 ${ms(bareBurst.latencies, 50)} ms, p99 ${ms(bareBurst.latencies, 99)} ms`,
    );
    if (process.env.BENCH_OUTLIERS) {
      const slow = [...burst.timeline].sort((a, b) => b[1] - a[1]).slice(0, 30).sort((a, b) => a[0] - b[0]);
      out.push(`  slowest (due ms: latency ms): ${slow.map(([d, l]) => `${Math.round(d)}:${Math.round(l)}`).join(' ')}`);
    }
    await new Promise((r) => setTimeout(r, 1_000));
    // A harsher shape: autocannon at overallRate 1,000 sends each connection's share back to back at the top of the second.
    const backToBack = await load(base, keys, { amount: 1_000, overallRate: 1_000, connections: BURST_CONNECTIONS });
    out.push(
      `  the same 1,000 sent back to back (autocannon, ${BURST_CONNECTIONS} connections): ${backToBack.accepted} accepted in ${backToBack.seconds.toFixed(2)} s; p50 ${backToBack.p50} ms, p99 ${backToBack.p99} ms; on the bare route p50 ${bareBackToBack.p50} ms, p99 ${bareBackToBack.p99} ms`,
    );
    const commitsBefore = await groupCommits(base);
    const cpuBefore = cpuSample(server.pid);
    const sustained = await load(base, keys, { duration: SUSTAINED_SECONDS, connections: CONNECTIONS });
    const cpuAfter = cpuSample(server.pid);
    const commitsAfter = await groupCommits(base);
    const rate = sustained.accepted / sustained.seconds;
    out.push(
      `sustained ${SUSTAINED_SECONDS} s, ${CONNECTIONS} connections: ${Math.round(rate)} accepted OTPs/s (${sustained.non2xx} refused, ${sustained.errors} errors); p50 ${sustained.p50} ms, p99 ${sustained.p99} ms (goal ≥ 5,000/s)`,
    );
    if (cpuBefore && cpuAfter) out.push(`  service CPU: ${cpuPerItem(cpuBefore, cpuAfter, sustained.accepted, 'accepted send')}`);
    const commits = commitsAfter.commits - commitsBefore.commits;
    if (commits > 0) out.push(`  group commits: ${Math.round(commits / sustained.seconds)}/s, ${((commitsAfter.appends - commitsBefore.appends) / commits).toFixed(1)} appends each on average`);
    out.push(`ceiling: bare Fastify route ${Math.round(ceilingRate)} req/s, p99 ${ceiling.p99} ms; send-otp is ${((100 * rate) / ceilingRate).toFixed(1)}% of it (goal ≥ 25%)`);
    let total = burst.accepted + backToBack.accepted + sustained.accepted + 1_500;
    const target = process.env.BENCH_MILLION === '1' ? 1_000_000 : Number(process.env.BENCH_TOTAL ?? 0);
    if (target > 0) {
      // The long run's own rate: past 30 s of sends the phones' windows start expiring, which the
      // 15-s sustained run never reaches (the limiter's sweep then runs on every send).
      const longCpuBefore = cpuSample(server.pid);
      const longStarted = performance.now();
      let more = 0;
      while (total < target) {
        const r = await load(base, keys, { amount: Math.min(200_000, target - total), connections: CONNECTIONS });
        total += r.accepted;
        more += r.accepted;
        if (r.accepted === 0) throw new Error('no progress');
      }
      const longCpuAfter = cpuSample(server.pid);
      out.push(`then ${more.toLocaleString('en-US')} more sends at ${Math.round(more / ((performance.now() - longStarted) / 1000))}/s (${CONNECTIONS} connections)`);
      if (longCpuBefore && longCpuAfter) out.push(`  service CPU: ${cpuPerItem(longCpuBefore, longCpuAfter, more, 'accepted send')}`);
    }
    if (process.env.BENCH_HEAP) {
      server.kill('SIGUSR2');
      // Writing the snapshot blocks the server; the next request waits for it.
      await new Promise((r) => setTimeout(r, 1_000));
      await fetch(`${base}/health/live`).catch(() => undefined);
    }
    const gauges = await (await fetch(`${base}/metrics`)).text();
    const mb = (name: string) => {
      const m = new RegExp(`^${name} (\\S+)`, 'm').exec(gauges);
      return m ? `${Math.round(Number(m[1]) / 2 ** 20)} MB` : 'n/a';
    };
    out.push(
      `server RSS after ${total.toLocaleString('en-US')} accepted OTPs: ${rssMb(server.pid!)} MB (goal < 400 MB at 1,000,000); main thread's JS heap ${mb('nodejs_heap_size_used_bytes')} used of ${mb('nodejs_heap_size_total_bytes')}, external ${mb('nodejs_external_memory_bytes')}`,
    );
    const scrapes: number[] = [];
    let text = '';
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      text = await (await fetch(`${base}/metrics`)).text();
      scrapes.push(performance.now() - t);
    }
    // What the command path's snapshots of the accounts' states cost meanwhile (README, "Account snapshots").
    const series = (name: string) => Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    const written = series('nexo_command_snapshot_seconds_count');
    out.push(
      `  account state snapshots written: ${written} (${((1000 * series('nexo_command_snapshot_seconds_sum')) / Math.max(1, written)).toFixed(1)} ms each on average, ` +
        `${written - series('nexo_command_snapshot_seconds_bucket{le="0.01"}')} over 10 ms); account state loads from the log: ${series('nexo_command_state_load_seconds_count{snapshot="none"}')}`,
    );
    if (process.env.BENCH_OUTLIERS) out.push(`  scrapes in order (ms): ${scrapes.map((s) => s.toFixed(1)).join(" ")}`);
    scrapes.sort((a, b) => a - b);
    out.push(`GET /metrics after ${total.toLocaleString('en-US')} OTPs: median ${scrapes[10].toFixed(1)} ms, max ${scrapes[19].toFixed(1)} ms over 20 scrapes (goal < 20 ms)`);
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
  const mode = process.env.BENCH_WORKERS === 'off' ? 'API only (NEXO_WORKERS=off)' : 'embedded default: delivery workers and simulator in the same process';
  process.stdout.write(`bench:api (${mode}; ${ACCOUNTS} funded accounts, distinct phones, synchronous=FULL appends)\n${out.join('\n')}\n`);
}

await main();
