/**
 * bench:replay: replaying 1,000,000 events into all read models, with the raw
 * log read rate measured in the same run as the ceiling, then `ledger replay`
 * (the built CLI, as finance runs it) on the same file, then the projection
 * lag while sends are appended as fast as the command path takes them.
 *
 * The log is a realistic mix, written straight into a temp SQLite file: per
 * OTP OtpRequested + Charged on the account stream, Routed and
 * ReceiptReceived on its own stream, then Delivered (90 %) or Refunded;
 * 500 accounts with skewed (Zipf) traffic, deposits, keys, over ~3 months.
 * Targets: replay ≥ 100,000 events/s, `ledger replay` < 15 s, lag < 1 s.
 * Then (f) the busiest account's state loaded as after a restart, without and with snapshots:
 * how long its first command waits, and the longest the event loop (every other account's
 * requests) is held meanwhile.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { type AccountCommand, accountDecider, accountStream, DomainError } from '#domain';
import { CommandRunner, SqliteEventStore, SqliteSnapshotStore } from '#eventstore';
import { defaultProjections, listBalances, Projector } from '#projections';
import { testDeposit } from '../libs/eventstore/src/testing/seed-accounts.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const ACCOUNTS = 500;
const PRICE = 22_000;
const LAG_SECONDS = Number(process.env.BENCH_LAG_SECONDS ?? 10);
const SENDERS = 500;
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../..');

const dir = mkdtempSync(join(tmpdir(), 'nexo-bench-replay-'));
const file = join(dir, 'nexo.db');
const out = (line: string) => process.stdout.write(`${line}\n`);
const rate = (n: number, seconds: number) => Math.round(n / seconds);
const fmt = (n: number) => n.toLocaleString('en-US');

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Pending {
  ms: number;
  seq: number;
  stream: string;
  type: string;
  data: unknown;
}

/** A send as the API would decide it (sealed fields are placeholders: nothing here opens them). */
function benchSend(otpId: string, i: number, channel: 'sms' | 'voice'): AccountCommand {
  return {
    type: 'SendOtp',
    price: BigInt(PRICE),
    otp: {
      otpId,
      phone: 'k1:c2VhbGVkLXBob25l',
      phoneHash: i.toString(16).padStart(64, '0'),
      phoneMasked: '+8491****678',
      carrier: 'viettel',
      channel,
      code: 'k1:c2VhbGVkLWNvZGU',
      at: new Date().toISOString(),
    },
  };
}

/** Writes the log with plain INSERTs in large transactions: setup, not what is measured. */
async function generateLog(): Promise<{ events: number; otps: number }> {
  const random = prng(7);
  const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');
  const weights = Array.from({ length: ACCOUNTS }, (_, i) => 1 / (i + 1) ** 1.1);
  const total = weights.reduce((a, b) => a + b, 0);
  const cumulative: number[] = [];
  let running = 0;
  for (const w of weights) cumulative.push((running += w) / total);
  const pickAccount = () => {
    const r = random();
    let lo = 0;
    let hi = ACCOUNTS - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid] < r) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const carriers = ['viettel', 'viettel', 'viettel', 'vinaphone', 'vinaphone', 'mobifone', 'mobifone', 'vietnamobile'] as const;
  const start = Date.parse('2026-01-15T00:00:00.000Z');
  const events: Pending[] = [];
  let seq = 0;
  const push = (ms: number, stream: string, type: string, data: unknown) => events.push({ ms, seq: seq++, stream, type, data });
  const iso = (ms: number) => new Date(ms).toISOString();

  const perAccountSetup = 4;
  const otps = Math.floor((EVENTS - ACCOUNTS * perAccountSetup) / 5);
  const spanMs = 75 * 24 * 3600 * 1000;
  for (let a = 0; a < ACCOUNTS; a++) {
    const s = accountStream(`acc${a}`);
    const t = start + a * 1000;
    push(t, s, 'AccountOpened', { accountId: `acc${a}`, name: `Exchange ${a}`, testCredits: 5, at: iso(t) });
    push(t + 1, s, 'ApiKeyIssued', { keyId: `k${a}`, keyHash: hex(a + 1, 64), prefix: 'nx_live_', at: iso(t + 1) });
    push(t + 2, s, 'DepositAddressAssigned', { chain: 'bsc', address: `0x${hex(a + 1, 40)}`, index: a, at: iso(t + 2) });
    // Enough to pay for every send this account will make (weights are its share of traffic).
    // A count of OTPs (20 % headroom over this account's share), then integer money.
    const fundedOtps = Math.ceil(((weights[a] / total) * otps + 50) * 1.2);
    const amount = BigInt(fundedOtps) * BigInt(PRICE);
    push(t + 3, s, 'DepositCredited', {
      chainId: 56,
      token: `0x${'5'.repeat(40)}`,
      txHash: `0x${hex(a + 1, 64)}`,
      logIndex: 0,
      blockNumber: 40_000_000 + a,
      blockHash: `0x${hex(a + 7, 64)}`,
      amount: amount.toString(),
      at: iso(t + 3),
    });
  }
  const used = new Array<number>(ACCOUNTS).fill(0);
  for (let i = 0; i < otps; i++) {
    const a = pickAccount();
    const s = accountStream(`acc${a}`);
    // Random like the API's ids (newId: 12 random bytes, base64url): inserts land all over the B-trees, as in production.
    const otpId = `otp_${Buffer.from(Array.from({ length: 12 }, () => Math.floor(random() * 256))).toString('base64url')}`;
    const t = start + 3_600_000 + Math.floor((i / otps) * spanMs);
    const carrier = carriers[Math.floor(random() * carriers.length)];
    const channel = carrier !== 'mobifone' && random() < 0.6 ? 'voice' : 'sms';
    const fundedBy = used[a]++ < 5 ? 'test_credit' : 'balance';
    push(t, s, 'OtpRequested', {
      otpId,
      phone: `k1:${Buffer.from(`phone-${i}-sealed-with-iv-and-tag`).toString('base64url')}`,
      phoneHash: hex(i * 7919, 64),
      phoneMasked: '+8491****678',
      carrier,
      channel,
      code: `k1:${Buffer.from(`code-${i}-sealed-iv-tag`).toString('base64url')}`,
      at: iso(t),
    });
    push(t, s, 'Charged', { otpId, amount: String(PRICE), fundedBy, at: iso(t) });
    const routedMs = t + 200 + Math.floor(random() * 800);
    const o = `otp-${otpId}`;
    const messageId = `sim-${hex(i, 10)}`;
    push(routedMs, o, 'Routed', { attempt: 1, provider: 'sim', carrier, channel, providerMessageId: messageId, at: iso(routedMs) });
    const ok = random() < 0.9;
    // Voice rings in 5-10 s; SMS receipts come in a few seconds to a minute (log-normal-ish).
    const latency = channel === 'voice' ? 5_000 + random() * 5_000 : 2_000 * Math.exp(random() * 3.4);
    const doneMs = ok ? Math.floor(t + latency) : t + 600_000;
    push(doneMs, o, 'ReceiptReceived', {
      providerMessageId: messageId,
      status: ok ? (channel === 'voice' ? 'answered' : 'delivered') : 'expired',
      raw: `id:${messageId} sub:001 dlvrd:${ok ? '001' : '000'} submit date:2601150000 done date:2601150000 stat:${ok ? 'DELIVRD' : 'EXPIRED'} err:000`,
      at: iso(doneMs),
    });
    if (ok) push(doneMs, s, 'Delivered', { otpId, via: channel === 'voice' ? 'voice_answer' : 'receipt', at: iso(doneMs) });
    else push(doneMs, s, 'Refunded', { otpId, amount: String(PRICE), fundedBy, reason: 'expired', at: iso(doneMs) });
  }
  events.sort((x, y) => x.ms - y.ms || x.seq - y.seq);

  await SqliteEventStore.open(file).close();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const insert = db.prepare('INSERT INTO events (position, stream_id, revision, id, type, data, metadata, created) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)');
  const revisions = new Map<string, number>();
  const CHUNK = 100_000;
  for (let from = 0; from < events.length; from += CHUNK) {
    db.transaction(() => {
      for (let i = from; i < Math.min(from + CHUNK, events.length); i++) {
        const e = events[i];
        const revision = (revisions.get(e.stream) ?? -1) + 1;
        revisions.set(e.stream, revision);
        insert.run(i + 1, e.stream, revision, randomUUID(), e.type, JSON.stringify(e.data), e.ms);
      }
    })();
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return { events: events.length, otps };
}

/**
 * Projection lag as a customer would see it: for every group commit of the
 * store, the time from that commit to the projector page that applies it
 * (log head to all read models). Sends go through the command path
 * (CommandRunner and the account decider, group commit, synchronous=FULL) as
 * fast as it takes them, with the projector running in the same process on
 * the same file, as in the embedded default. The API adds HTTP on top, which
 * only lowers the rate.
 */
async function lagUnderLoad(): Promise<{ sends: number; seconds: number; maxLag: number; p99Lag: number; samples: number }> {
  const marks: { position: bigint; at: number }[] = [];
  const lags: number[] = [];
  let measuring = false;
  const store: SqliteEventStore = SqliteEventStore.open(file, {
    onCommit: () => {
      if (!measuring) return;
      const at = performance.now();
      // headPosition reads synchronously; its promise settles before the projector is woken.
      void store.headPosition().then((position) => marks.push({ position, at }));
    },
  });
  const projector = new Projector({
    store,
    db: store.db,
    projections: defaultProjections(),
    onPage: ({ position }) => {
      const now = performance.now();
      while (marks.length > 0 && marks[0].position <= position) lags.push((now - (marks.shift() as { at: number }).at) / 1000);
    },
  });
  await projector.catchUp();
  projector.start();
  const runner = new CommandRunner(store);
  const accounts = listBalances(store.db)
    .filter((b) => b.balance > 1_000_000n)
    .map((b) => b.accountId);
  // The accounts' states loaded first, as in a service that has been up a while: the lag measured is
  // the sends' (loading 1,000,000 events' worth of accounts is (f)'s subject, and its folds now
  // share the event loop with the commits instead of holding it).
  for (const accountId of accounts) await runner.peek(accountStream(accountId), accountDecider);
  measuring = true;
  let sends = 0;
  let n = 0;
  const deadline = performance.now() + LAG_SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: SENDERS }, async () => {
      while (performance.now() < deadline) {
        const i = n++;
        const accountId = accounts[i % accounts.length];
        const cmd = benchSend(`load_${i}`, i, 'voice');
        try {
          await runner.handle(accountStream(accountId), accountDecider, cmd);
          sends++;
        } catch (error) {
          if (!(error instanceof DomainError)) throw error;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await projector.waitUntilCaughtUp(30_000);
  measuring = false;
  await projector.stop();
  await store.close();
  const sorted = [...lags].sort((a, b) => a - b);
  return { sends, seconds, maxLag: sorted[sorted.length - 1] ?? 0, p99Lag: sorted[Math.floor(sorted.length * 0.99)] ?? 0, samples: lags.length };
}

interface LoadTiming {
  ms: number;
  /** The longest the event loop was held while the state loaded. */
  stallMs: number;
  snapshot: string;
  events: number;
}

/** (f) The busiest account's first command on a fresh runner, as after a restart. */
async function restartLoads(): Promise<{ stream: string; events: number; whole: LoadTiming; first: LoadTiming; later: LoadTiming; tail: number }> {
  const store = SqliteEventStore.open(file);
  const db = new Database(join(dir, 'state.db'));
  const snapshots = new SqliteSnapshotStore(db);
  const { stream, events } = store.db
    .prepare<[], { stream: string; events: number }>(
      "SELECT stream_id AS stream, count(*) AS events FROM events WHERE stream_id LIKE 'account-%' GROUP BY stream_id ORDER BY events DESC LIMIT 1",
    )
    .get() as { stream: string; events: number };
  const probe: AccountCommand = { type: 'MarkDelivered', otpId: 'otp_never_sent', via: 'receipt', at: new Date().toISOString() };
  const timed = async (withSnapshots: boolean): Promise<LoadTiming> => {
    let load = { snapshot: 'none', events: 0 };
    const runner = new CommandRunner(store, withSnapshots ? { snapshots, onLoad: (l) => (load = l) } : { onLoad: (l) => (load = l) });
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const t0 = performance.now();
    await runner.handle(stream, accountDecider, probe);
    const ms = performance.now() - t0;
    delay.disable();
    return { ms, stallMs: delay.max / 1e6, ...load };
  };
  const whole = await timed(false);
  const first = await timed(true);
  // Traffic after the snapshot the first load wrote: what a later restart folds on top of it.
  const writer = new CommandRunner(store, { snapshots });
  const sends = 3_333;
  await writer.handle(stream, accountDecider, testDeposit(BigInt(PRICE * sends), new Date().toISOString()));
  await Promise.all(
    Array.from({ length: sends }, (_, i) =>
      writer.handle(stream, accountDecider, benchSend(`restart_${i}`, i, 'sms')),
    ),
  );
  const later = await timed(true);
  await store.close();
  db.close();
  return { stream, events, whole, first, later, tail: sends * 2 };
}

async function main(): Promise<void> {
  // The machine may be shared: the figures hold against the ceiling measured in the same run, and the load says how shared.
  const loadAtStart = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  let t = performance.now();
  const log = await generateLog();
  out(`bench:replay: ${fmt(log.events)} events (${fmt(log.otps)} OTPs, ${ACCOUNTS} accounts) written in ${((performance.now() - t) / 1000).toFixed(1)} s; ${(statSync(file).size / 1e6).toFixed(0)} MB`);

  // (a) ceiling: the raw log read rate through the store's page reader, nothing applied.
  const reader = SqliteEventStore.open(file, { readonly: true });
  t = performance.now();
  let read = 0;
  for (let from = 0; ; ) {
    const page = reader.readPage(from, 5_000);
    if (page.length === 0) break;
    read += page.length;
    from = Number(page[page.length - 1].position);
  }
  const ceilingSeconds = (performance.now() - t) / 1000;
  await reader.close();
  const ceiling = rate(read, ceilingSeconds);

  // (b) the projector: every read model, in the log's own file, on the store's own connection (the embedded default).
  const store = SqliteEventStore.open(file);
  const projector = new Projector({ store, db: store.db, projections: defaultProjections() });
  t = performance.now();
  const cpu = process.cpuUsage();
  const replayed = await projector.catchUp();
  const replaySeconds = (performance.now() - t) / 1000;
  const { user, system } = process.cpuUsage(cpu);
  const replayCpu = (user + system) / 1e6;
  await store.close();
  const replayRate = rate(replayed, replaySeconds);

  // (e, optional) what a Prometheus scrape costs on a service whose read models hold this whole log:
  // the registry with every scrape-time figure (lags, month ratios, in-flight), as `/metrics` renders it.
  let scrape = '';
  if (process.env.BENCH_SCRAPE === '1') {
    const { createProcessMetrics } = await import('../apps/api/src/core/metrics.js');
    const live = SqliteEventStore.open(file);
    const p = new Projector({ store: live, db: live.db, projections: defaultProjections() });
    await p.catchUp();
    const metrics = createProcessMetrics({ db: live.db, projector: p, providers: ['simulator'], workers: () => undefined, clock: () => new Date() });
    const times: number[] = [];
    for (let i = 0; i < 21; i++) {
      const s0 = performance.now();
      await metrics.render();
      times.push(performance.now() - s0);
    }
    times.sort((x, y) => x - y);
    scrape = `(e) /metrics render with ${fmt(log.otps)} OTPs in the read models: median ${times[10].toFixed(1)} ms, max ${times[20].toFixed(1)} ms over 21 renders   target < 20 ms`;
    await live.close();
  }

  // (c) the built CLI, as finance runs it, against the same file.
  t = performance.now();
  const { stdout } = await promisify(execFile)(process.execPath, [join(repoRoot, 'dist/apps/ledger/src/main.js'), 'replay', '--db', file], {
    maxBuffer: 64 * 1024 * 1024,
  });
  const cliSeconds = (performance.now() - t) / 1000;
  const summary = stdout.trim().split('\n').at(-1);

  // (d) lag while sends are appended as fast as the command path takes them.
  const lag = await lagUnderLoad();

  // (f) the busiest account's state after a restart.
  const restart = await restartLoads();

  if (scrape) out(scrape);
  const pct = (r: number) => `${((100 * r) / ceiling).toFixed(0)}% of (a)`;
  out(`(a) ceiling: raw log read (readPage, 5,000/page)     ${fmt(ceiling).padStart(10)} events/s   ${ceilingSeconds.toFixed(2)} s`);
  out(`(b) projector replay into all read models          ${fmt(replayRate).padStart(10)} events/s   ${replaySeconds.toFixed(2)} s   ${pct(replayRate)}   target >= 100,000`);
  out(`    (b) in CPU time: ${replayCpu.toFixed(2)} s, ${fmt(rate(replayed, replayCpu))} events per CPU-second; load average at start ${loadAtStart}`);
  out(`(c) ledger replay (node dist/apps/ledger/src/main.js) ${cliSeconds.toFixed(2).padStart(8)} s   (${summary})   target < 15 s`);
  out(
    `(d) projection lag under send load: ${fmt(rate(lag.sends, lag.seconds))} sends/s by ${SENDERS} senders for ${lag.seconds.toFixed(0)} s; ` +
      `log head to all read models: max ${lag.maxLag.toFixed(3)} s, p99 ${lag.p99Lag.toFixed(3)} s over ${lag.samples} commits   target < 1 s`,
  );
  const timing = (l: LoadTiming) => `${l.ms.toFixed(0)} ms (${fmt(l.events)} events folded, snapshot ${l.snapshot}; longest event-loop stall ${l.stallMs.toFixed(0)} ms)`;
  out(`(f) busiest account (${restart.stream}, ${fmt(restart.events)} events), its first command after a restart:`);
  out(`    without snapshots ${timing(restart.whole)}`);
  out(`    with snapshots, the first load ${timing(restart.first)}, which writes one`);
  out(`    with snapshots, ${fmt(restart.tail)} events later ${timing(restart.later)}   target: stall < 50 ms`);
  rmSync(dir, { recursive: true, force: true });
}

await main();
