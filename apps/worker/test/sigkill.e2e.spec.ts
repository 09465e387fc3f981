/**
 * A crash in the middle of 5,000 OTPs (I2, I6): the embedded service runs as a
 * child process (compiled output, a temp data dir, a fast simulator), the test
 * sends it 5,000 OTPs over HTTP and SIGKILLs it half way, with sends, carrier
 * submissions, receipts, settlements and webhooks in flight. The client then
 * does what API.md asks of one: it retries every request that got no answer,
 * with the same Idempotency-Key, against the restarted service. Afterwards the
 * raw log must hold each accepted OTP charged once and settled once, refunds
 * equal to their charge, and `ledger verify` must pass.
 *
 * Accounts are seeded straight into the SQLite file before the first start
 * (opened, keyed and funded), as bench/api.bench.ts does: signup would give
 * each only 5 test credits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandRunner, SqliteEventStore } from '#eventstore';
import { until } from '#testing';
import { ensureBuilt, repoRoot } from '../../../libs/eventstore/src/testing/ensure-built.js';
import { nextPhone, readLedger } from './pipeline.harness.js';
import { ledgerProcess } from '../../ledger/test/ledger-test-kit.js';
import { seedFundedAccounts } from '../../../libs/eventstore/src/testing/seed-accounts.js';

const TOTAL = 5_000;
const KILL_AFTER = 2_500;
const ACCOUNTS = 10;
const CONCURRENCY = 48;
const EXPIRY_SECONDS = 8;
const AT = new Date().toISOString();

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function seedAccounts(file: string): Promise<string[]> {
  const store = SqliteEventStore.open(file);
  const keys = await seedFundedAccounts(new CommandRunner(store), { count: ACCOUNTS, prefix: 'crash', testCredits: 5, depositMicros: 1_000n * 1_000_000n, at: AT });
  await store.close();
  return keys;
}

interface Service {
  child: ChildProcess;
  base: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startService(dataDir: string): Promise<Service> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(repoRoot, 'dist/apps/api/src/main.js')], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      NODE_OPTIONS: '',
      NEXO_DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      NEXO_EXPIRY_SECONDS: String(EXPIRY_SECONDS),
      // Latencies of 40 ms to 0.9 s: at the kill, OTPs are queued, routed and waiting for receipts at once.
      // The default failure, lost-receipt and duplicate-receipt rates stay on.
      NEXO_CARRIERS: JSON.stringify({ providers: [{ kind: 'simulator', name: 'simulator', simulator: { timeScale: 0.02 } }] }),
    },
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err = (err + c.toString()).slice(-4_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const base = `http://127.0.0.1:${port}`;
  await until(
    () => `the service to be ready (stderr: ${err})`,
    async () => {
      if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}: ${err}`);
      try {
        return (await fetch(`${base}/health/ready`)).status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 30_000, everyMs: 100 },
  );
  return { child, base, stderr: () => err, exited };
}

interface Request {
  key: string;
  idempotencyKey: string;
  body: string;
  id?: string;
}

async function sendAll(base: string, requests: Request[], onAccepted?: (n: number) => void): Promise<void> {
  let next = 0;
  let accepted = 0;
  const worker = async () => {
    for (let r = requests[next++]; r; r = requests[next++]) {
      try {
        const res = await fetch(`${base}/api/v1/send-otp`, {
          method: 'POST',
          headers: { authorization: `Bearer ${r.key}`, 'content-type': 'application/json', 'idempotency-key': r.idempotencyKey },
          body: r.body,
        });
        const body = (await res.json()) as { ok: boolean; id?: string; error?: string };
        if (res.status !== 200 || !body.ok) throw new Error(`send refused: ${res.status} ${body.error}`);
        r.id = body.id;
        onAccepted?.(++accepted);
      } catch (error) {
        // No answer (the service died with the request in flight): the client retries it later.
        if (error instanceof Error && error.message.startsWith('send refused')) throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

describe('SIGKILL in the middle of 5,000 OTPs', () => {
  let dir: string;
  let service: Service | undefined;

  beforeAll(() => ensureBuilt(), 120_000);
  afterAll(() => {
    if (service && service.child.exitCode === null) service.child.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('settles every accepted OTP exactly once after a restart, and ledger verify passes', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-sigkill-'));
    const file = join(dir, 'nexo.db');
    const keys = await seedAccounts(file);
    const requests: Request[] = Array.from({ length: TOTAL }, (_, i) => ({
      key: keys[i % keys.length],
      idempotencyKey: `crash-${i}`,
      body: JSON.stringify({ phone: nextPhone(), code: String(100000 + i) }),
    }));

    service = await startService(dir);
    const first = service;
    await sendAll(first.base, requests, (n) => {
      if (n === KILL_AFTER) first.child.kill('SIGKILL');
    });
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const answeredBeforeKill = requests.filter((r) => r.id).length;
    expect(answeredBeforeKill).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(answeredBeforeKill).toBeLessThan(TOTAL);
    // The kill caught OTPs between acceptance and settlement: the restart has work to finish.
    const atKill = SqliteEventStore.open(file, { readonly: true });
    const openAtKill = [...(await readLedger(atKill)).values()].filter((f) => f.settlements.length === 0).length;
    await atKill.close();
    expect(openAtKill).toBeGreaterThan(0);

    service = await startService(dir);
    const idsBefore = new Map(requests.filter((r) => r.id).map((r) => [r.idempotencyKey, r.id]));
    await sendAll(
      service.base,
      requests.filter((r) => !r.id),
    );
    expect(requests.filter((r) => !r.id)).toEqual([]);
    const accepted = new Set(requests.map((r) => r.id!));
    expect(accepted.size).toBe(TOTAL);

    const month = new Date().toISOString().slice(0, 7);
    await until(
      'every accepted OTP delivered or refunded',
      async () => {
        const stats = (await (await fetch(`${service!.base}/api/v1/stats/public?month=${month}`)).json()) as { sent: number; in_flight: number };
        return stats.sent === TOTAL && stats.in_flight === 0 ? true : undefined;
      },
      { timeoutMs: (EXPIRY_SECONDS + 20) * 1000, everyMs: 250 },
    );
    service.child.kill('SIGTERM');
    expect(await service.exited).toEqual({ code: 0, signal: null });

    const store = SqliteEventStore.open(file, { readonly: true });
    const ledger = await readLedger(store);
    await store.close();
    const problems: string[] = [];
    let delivered = 0;
    for (const [otpId, f] of ledger) {
      if (!accepted.has(otpId)) problems.push(`${otpId} is in the log but was never accepted`);
      if (f.charged.length !== 1) problems.push(`${otpId} charged ${f.charged.length} times`);
      if (f.settlements.length !== 1) problems.push(`${otpId} settled ${f.settlements.length} times`);
      const [s] = f.settlements;
      if (s?.type === 'Delivered') delivered++;
      if (s?.type === 'Refunded' && (s.data as { amount: string }).amount !== f.charged[0]?.amount.toString()) problems.push(`${otpId} refund differs from charge`);
    }
    for (const id of accepted) if (!ledger.has(id)) problems.push(`${id} was accepted but is not in the log`);
    expect(problems.slice(0, 20)).toEqual([]);
    // An idempotent replay answered with the id the first (killed) attempt had given.
    for (const [k, id] of idsBefore) expect(requests.find((r) => r.idempotencyKey === k)!.id).toBe(id);
    expect(delivered).toBeGreaterThan(TOTAL * 0.8);

    const verify = await ledgerProcess('verify', '--db', file);
    expect(verify.stdout + verify.stderr).toMatch(/0 violations/);
    expect(verify.code).toBe(0);
  }, 120_000);
});
