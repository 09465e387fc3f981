/**
 * bench:store: the SQLite event store's write and read rates, each with its
 * ratio to a ceiling measured in the same run (raw better-sqlite3 inserts of
 * the same rows in one transaction), so the ratios hold on a noisy machine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { SqliteEventStore } from '#eventstore';

const APPENDERS = 1_000;
const STREAMS = 100;
const SINGLE_EVENTS = Number(process.env.BENCH_EVENTS ?? 200_000);
const BATCH = 100;

const dir = mkdtempSync(join(tmpdir(), 'nexo-bench-store-'));
const data = { otpId: 'otp_0123456789abcdef', amount: '22000', fundedBy: 'balance', at: '2026-11-25T10:00:00.000Z' };

function rate(n: number, seconds: number): number {
  return Math.round(n / seconds);
}

async function appenders(store: SqliteEventStore, total: number, perAppend: number): Promise<number> {
  const events = Array.from({ length: perAppend }, () => ({ type: 'Charged', data }));
  let left = total / perAppend;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: APPENDERS }, async (_, i) => {
      const stream = `account-bench${i % STREAMS}`;
      while (left-- > 0) await store.append(stream, events, 'any');
    }),
  );
  return (performance.now() - started) / 1000;
}

async function main(): Promise<void> {
  const out: [string, number][] = [];
  const commits: number[] = [];
  const store = SqliteEventStore.open(join(dir, 'a.db'), { onCommit: (s) => commits.push(s.appends) });
  const secA = await appenders(store, SINGLE_EVENTS, 1);
  out.push(['(a) 1,000 concurrent single-event appenders, durable', rate(SINGLE_EVENTS, secA)]);
  const avgBatch = commits.reduce((a, b) => a + b, 0) / commits.length;

  const storeB = SqliteEventStore.open(join(dir, 'b.db'));
  const secB = await appenders(storeB, SINGLE_EVENTS * 5, BATCH);
  out.push(['(b) 1,000 concurrent 100-event appenders, durable', rate(SINGLE_EVENTS * 5, secB)]);
  await storeB.close();

  let started = performance.now();
  let folded = 0;
  let sum = 0n;
  for await (const e of store.readAll()) {
    folded++;
    sum += BigInt((e.data as { amount: string }).amount);
  }
  const secC = (performance.now() - started) / 1000;
  out.push(['(c) read the whole log back and fold it', rate(folded, secC)]);
  if (sum !== 22_000n * BigInt(SINGLE_EVENTS)) throw new Error(`fold mismatch: ${sum}`);
  await store.close();

  const raw = new Database(join(dir, 'raw.db'));
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = FULL');
  raw.exec(`CREATE TABLE events (position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, revision INTEGER NOT NULL, id TEXT NOT NULL,
    type TEXT NOT NULL, data TEXT NOT NULL, metadata TEXT, created INTEGER NOT NULL, UNIQUE (stream_id, revision))`);
  const insert = raw.prepare('INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const revs = new Array<number>(STREAMS).fill(0);
  started = performance.now();
  raw.transaction(() => {
    for (let p = 1; p <= SINGLE_EVENTS; p++) {
      const s = p % STREAMS;
      insert.run(p, `account-bench${s}`, revs[s]++, randomUUID(), 'Charged', JSON.stringify(data), null, Date.now());
    }
  })();
  const ceiling = rate(SINGLE_EVENTS, (performance.now() - started) / 1000);
  raw.close();

  const lines = out.map(([name, r]) => `${name.padEnd(56)} ${String(r).padStart(10)} events/s   ${((100 * r) / ceiling).toFixed(1).padStart(6)}% of (d)`);
  lines.push(`${'(d) ceiling: raw better-sqlite3 inserts, one transaction'.padEnd(56)} ${String(ceiling).padStart(10)} events/s`);
  lines.push(`group commit in (a): ${commits.length} transactions, ${avgBatch.toFixed(0)} appends each on average`);
  process.stdout.write(`bench:store (${SINGLE_EVENTS} events, ${APPENDERS} appenders, ${STREAMS} streams, synchronous=FULL)\n${lines.join('\n')}\n`);
  rmSync(dir, { recursive: true, force: true });
}

await main();
