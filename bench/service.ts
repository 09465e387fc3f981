/**
 * What the benches that drive a running service share: how `npm start` runs
 * it, a free loopback port, and the send-otp requests they offer.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import type autocannon from 'autocannon';

/**
 * How `npm start` runs the service: the environment it sets and the node
 * flags it passes. package.json is their one home; benches that start the
 * service themselves (to measure its own process) read them from there, so
 * they measure what a user runs.
 */
export function serviceCommand(root: string): { env: Record<string, string>; flags: string[] } {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const m = /((?:\b\w+=\S+ )*)node((?: --\S+)*) dist\/apps\/api\/src\/main\.js/.exec(pkg.scripts.start);
  if (!m) throw new Error('the start script of package.json does not run dist/apps/api/src/main.js');
  const env = Object.fromEntries(m[1].split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return { env, flags: m[2].split(' ').filter(Boolean) };
}

let phoneCounter = 0;
/** Distinct numbers across Viettel/Vinaphone/Mobifone prefixes: 10 M before any repeats in one bench process. */
function nextPhone(): string {
  const n = phoneCounter++;
  const prefixes = ['091', '098', '090', '094', '086', '093', '097', '088'];
  return `${prefixes[n % prefixes.length]}${String(Math.floor(n / prefixes.length) % 10_000_000).padStart(7, '0')}`;
}

/** BENCH_KEYED=1: every send carries an Idempotency-Key of its own, as a careful client's do. */
const KEYED = process.env.BENCH_KEYED === '1';
let sendSeq = 0;

/** One send-otp request: round-robin over `keys`, a new phone each time, by SMS. */
function nextSendOtp(keys: readonly string[], k: number): { headers: Record<string, string>; body: string } {
  return {
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${keys[k % keys.length]}`,
      ...(KEYED ? { 'idempotency-key': `bench-${process.pid}-${sendSeq++}` } : {}),
    },
    body: JSON.stringify({ phone: nextPhone(), code: '482913', channel: 'sms' }),
  };
}

/** autocannon requests: `POST /api/v1/send-otp` by SMS, round-robin over `keys`, a new phone each time. */
export function sendOtpRequests(keys: readonly string[]): autocannon.Request[] {
  let k = 0;
  return [
    {
      method: 'POST',
      path: '/api/v1/send-otp',
      setupRequest: (req: autocannon.Request) => ({ ...req, ...nextSendOtp(keys, k++) }),
    },
  ];
}

export interface OfferedLoad {
  accepted: number;
  refused: number;
  errors: number;
  /** From the first scheduled send to the last answer. */
  seconds: number;
  /** Each answer's latency (ms) from the moment its send was due, sorted: a generator that falls behind counts against the server. */
  latencies: number[];
  /** [due (ms from the start), latency (ms)] of each answer, in answer order. */
  timeline: [number, number][];
}

/**
 * Open-loop load: `total` sends arriving at `rate` per second on average, as
 * independent arrivals (exponential gaps, seeded, so every run offers the same
 * pattern): how people arrive when a market moves. autocannon's `overallRate`
 * is another shape: each connection sends its share of a second back to back
 * at the top of the second, i.e. a second's sends in a fraction of it.
 * Requests go over a keep-alive pool of `connections`, opened before the
 * first send (a customer's backend keeps its pool open); one due while all
 * are busy waits for a free one, and that wait is part of its latency.
 */
export async function offerArrivals(base: string, keys: readonly string[], opts: { rate: number; total: number; connections: number; seed?: number }): Promise<OfferedLoad> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.connections });
  const url = new URL('/api/v1/send-otp', base);
  let seed = opts.seed ?? 20261126;
  const random = () => {
    // mulberry32: a small seeded generator, enough for arrival gaps.
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const due: number[] = [];
  let at = 0;
  for (let i = 0; i < opts.total; i++) {
    due.push(at);
    at += (-Math.log(1 - random()) * 1000) / opts.rate;
  }
  await Promise.all(
    Array.from(
      { length: opts.connections },
      () =>
        new Promise<void>((resolve, reject) => {
          request(new URL('/health/ready', base), { agent }, (res) => res.resume().on('end', resolve)).on('error', reject).end();
        }),
    ),
  );
  const result: OfferedLoad = { accepted: 0, refused: 0, errors: 0, seconds: 0, latencies: [], timeline: [] };
  const started = performance.now();
  const send = (i: number) =>
    new Promise<void>((resolve) => {
      const { headers, body } = nextSendOtp(keys, i);
      const req = request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => {
          result.timeline.push([due[i], performance.now() - started - due[i]]);
          if (res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300) result.accepted++;
          else result.refused++;
          resolve();
        });
      });
      req.on('error', () => {
        result.errors++;
        resolve();
      });
      req.end(body);
    });
  const inFlight: Promise<void>[] = [];
  let next = 0;
  while (next < opts.total) {
    const now = performance.now() - started;
    while (next < opts.total && due[next] <= now) inFlight.push(send(next++));
    if (next < opts.total) await new Promise((r) => setTimeout(r, Math.max(0, due[next] - (performance.now() - started))));
  }
  await Promise.all(inFlight);
  result.seconds = (performance.now() - started) / 1000;
  agent.destroy();
  result.latencies = result.timeline.map(([, latency]) => latency).sort((a, b) => a - b);
  return result;
}

/** The p-th percentile of sorted values (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** CPU seconds a process has used so far: in all, and per thread name (`main`, the named threads, `other`). */
export interface CpuSample {
  total: number;
  byThread: Map<string, number>;
}

/**
 * From /proc (Linux; undefined elsewhere). The service names its threads (`nexo-log-writer`,
 * `nexo-projector`, `nexo-webhooks`); V8's and libuv's helpers keep `node` and count as `other`,
 * as do threads that have exited (the process total still holds their time).
 */
export function cpuSample(pid: number | undefined): CpuSample | undefined {
  if (pid === undefined) return undefined;
  const ticks = (stat: string) => {
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  };
  try {
    const total = ticks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const byThread = new Map<string, number>();
    let named = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      let name: string;
      let seconds: number;
      try {
        name = Number(tid) === pid ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        seconds = ticks(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
      } catch {
        continue; // exited meanwhile
      }
      if (name !== 'main' && !name.startsWith('nexo-')) continue;
      byThread.set(name, (byThread.get(name) ?? 0) + seconds);
      named += seconds;
    }
    byThread.set('other', Math.max(0, total - named));
    return { total, byThread };
  } catch {
    return undefined;
  }
}

/** "752 µs per OTP over all its threads (main 321, nexo-webhooks 230, …)": CPU between two samples per item. */
export function cpuPerItem(before: CpuSample, after: CpuSample, items: number, item: string): string {
  const us = (seconds: number) => Math.round((seconds * 1e6) / items);
  const parts = [...after.byThread]
    .map(([name, seconds]) => [name, us(seconds - (before.byThread.get(name) ?? 0))] as const)
    .sort((a, b) => (a[0] === 'main' ? -1 : b[0] === 'main' ? 1 : a[0] === 'other' ? 1 : b[0] === 'other' ? -1 : b[1] - a[1]));
  return `${us(after.total - before.total)} µs per ${item} over all its threads (${parts.map(([name, v]) => `${name} ${v}`).join(', ')})`;
}
