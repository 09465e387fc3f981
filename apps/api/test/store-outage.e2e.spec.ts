/**
 * The log refusing writes for a while (a full disk, a failing volume) under a running embedded
 * service. First it refuses the dispatcher's `Routed` (the upstream has taken each code, the
 * log will not say so), then every write. Sends meanwhile are refused with nothing half-done;
 * once the log takes writes again every OTP accepted before settles exactly once, each was
 * submitted once (not again on the retries), its `Routed` is recorded even when its receipt
 * came first, and `ledger verify` passes. The outage is a trigger on the log's `events` table,
 * created and dropped by another connection to the file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteEventStore } from '#eventstore';
import { until } from '#testing';
import { ensureBuilt } from '../../../libs/eventstore/src/testing/ensure-built.js';
import { freePort, ready, startApiProcess, stopApiProcess } from './api-process.js';
import { freshPhone, get, post, signup } from './harness.js';
import { ledgerProcess } from '../../ledger/test/ledger-test-kit.js';

/** Voice answered in 0.5-1 s, SMS in 0.15-4.5 s: the OTPs are still in flight when the outage starts. */
const CARRIERS = JSON.stringify({ providers: [{ kind: 'simulator', name: 'simulator', simulator: { timeScale: 0.1, failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0 } }] });
const OUTAGE_MS = 3_000;

describe('the log refusing writes for a while (embedded service)', () => {
  beforeAll(() => ensureBuilt(), 180_000);

  it('refuses sends meanwhile; then every accepted OTP, submitted once, is routed and settled once, and ledger verify passes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexo-outage-'));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const child = startApiProcess(dir, port, { NEXO_CARRIERS: CARRIERS, NEXO_TEST_CREDITS: '100' });
    const file = join(dir, 'nexo.db');
    const outside = new Database(file);
    let expectedCharged = -1;
    outside.pragma('busy_timeout = 5000');
    try {
      await ready(base);
      const key = (await signup(base)).api_key;
      const sendOne = async () => {
        const r = await post(base, '/api/v1/send-otp', key, { phone: freshPhone(), code: '123456' });
        return { status: r.status, body: (await r.json()) as { id?: string; error?: string; message?: string } };
      };
      // The upstream takes each code, the log refuses to record it (and every batch that carries a `Routed`).
      outside.exec(`CREATE TRIGGER outage_routed BEFORE INSERT ON events WHEN NEW.type = 'Routed' BEGIN SELECT RAISE(ABORT, 'disk I/O error (test outage)'); END`);
      const before = await Promise.all(Array.from({ length: 20 }, sendOne));
      // A send in the same group commit as a refused `Routed` is refused with it: nothing was changed.
      for (const a of before.filter((x) => x.status !== 200)) expect(a).toEqual({ status: 500, body: { ok: false, error: 'internal', message: 'internal error; nothing was changed' } });
      const accepted = before.filter((a) => a.status === 200).map((a) => a.body.id!);
      expect(accepted.length).toBeGreaterThan(10);
      // Long enough for the dispatcher's retries and for receipts (0.15-4.5 s) to come before the `Routed`.
      await new Promise((r) => setTimeout(r, OUTAGE_MS));

      // Then nothing is written at all.
      outside.exec(`CREATE TRIGGER outage BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk I/O error (test outage)'); END; DROP TRIGGER outage_routed;`);
      const during = await Promise.all(Array.from({ length: 5 }, sendOne));
      for (const a of during) expect(a).toEqual({ status: 500, body: { ok: false, error: 'internal', message: 'internal error; nothing was changed' } });
      await new Promise((r) => setTimeout(r, 1_000));
      outside.exec('DROP TRIGGER outage');

      // Every OTP accepted before ends delivered (a simulator that fails nothing), however its steps
      // met the outage (submission, receipt, settlement).
      await until(
        'every accepted OTP delivered after the outage',
        async () => {
          const statuses = await Promise.all(accepted.map(async (id) => ((await (await get(base, `/api/v1/otp/${id}`, key)).json()) as { status: string }).status));
          return statuses.every((s) => s === 'delivered');
        },
        { timeoutMs: 30_000, everyMs: 200 },
      );
      // And the service takes sends again.
      const after = await sendOne();
      expect(after.status).toBe(200);
      await until('the send after the outage delivered', async () => ((await (await get(base, `/api/v1/otp/${after.body.id!}`, key)).json()) as { status: string }).status === 'delivered', {
        timeoutMs: 30_000,
        everyMs: 200,
      });
      // One submission per OTP: no step retried after the outage sent a code again.
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const submitted = [...metrics.matchAll(/^nexo_carrier_submit_seconds_count\{[^}]*outcome="ok"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
      expect(submitted).toBe(accepted.length + 1);
      expectedCharged = accepted.length + 1;
    } finally {
      outside.close();
      await stopApiProcess(child);
    }

    try {
      const store = SqliteEventStore.open(file, { readonly: true });
      const charged = new Map<string, number>();
      const settled = new Map<string, number>();
      const routed = new Map<string, number>();
      for await (const e of store.readAll()) {
        const otpId = (e.data as { otpId?: string }).otpId ?? (e.streamId.startsWith('otp-') ? e.streamId.slice(4) : undefined);
        if (!otpId) continue;
        const count = (m: Map<string, number>) => m.set(otpId, (m.get(otpId) ?? 0) + 1);
        if (e.type === 'Charged') count(charged);
        else if (e.type === 'Delivered' || e.type === 'Refunded') count(settled);
        else if (e.type === 'Routed') count(routed);
      }
      await store.close();
      // The sends answered 200 are in the log, and only they: the refused ones left nothing.
      expect(charged.size).toBe(expectedCharged);
      for (const [id, n] of charged) {
        expect([id, n, settled.get(id), routed.get(id)]).toEqual([id, 1, 1, 1]);
      }

      const verify = await ledgerProcess('verify', '--db', file);
      expect(verify.stdout + verify.stderr).toMatch(/0 violations/);
      expect(verify.code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
