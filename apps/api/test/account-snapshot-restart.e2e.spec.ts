/**
 * A busy account across restarts of the embedded default: its first command after the first
 * start folds the whole stream and the service writes a snapshot of the state into `state.db`;
 * after the next restart the state comes from that snapshot plus the events after it. Money is
 * the same either way (the balance, a settled OTP not charged again).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { accountStream, accountDecider, type AccountCommand } from '#domain';
import { CommandRunner, SqliteEventStore } from '#eventstore';
import { seedFundedAccounts } from '../../../libs/eventstore/src/testing/seed-accounts.js';
import { get, post, startServer } from './harness.js';

const AT = new Date().toISOString();
const OTPS = 4_000;
const DEPOSIT = 1_000_000_000n;

/** The count of one series in a `/metrics` text (0 when absent). */
function seriesValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

it('the first load after a restart folds the whole stream and writes a snapshot; the next restart starts from it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nexo-snapshot-restart-'));
  // API only: the seeded OTPs are settled already, and their sealed fields are placeholders no dispatcher could open.
  const env = { NEXO_DATA_DIR: dir, NEXO_WORKERS: 'off' };
  try {
    // 4,000 OTPs sent and delivered: 12,003 events on one account stream, written before the service starts.
    const store = SqliteEventStore.open(join(dir, 'nexo.db'));
    const runner = new CommandRunner(store);
    const [apiKey] = await seedFundedAccounts(runner, { count: 1, prefix: 'busy', depositMicros: DEPOSIT, at: AT });
    const stream = accountStream('acc_busy0');
    for (let i = 0; i < OTPS; i += 500) {
      const batch = Array.from({ length: 500 }, (_, j) => `otp_seed${String(i + j).padStart(6, '0')}`);
      await Promise.all(
        batch.map((otpId, j) =>
          runner.handle(stream, accountDecider, {
            type: 'SendOtp',
            price: 22_000n,
            otp: { otpId, phone: 'k1:c2VhbGVk', phoneHash: (i + j).toString(16).padStart(64, '0'), phoneMasked: '+8491****678', carrier: 'vinaphone', channel: 'sms', code: 'k1:c2VhbGVk', at: AT },
          } satisfies AccountCommand),
        ),
      );
      await Promise.all(batch.map((otpId) => runner.handle(stream, accountDecider, { type: 'MarkDelivered', otpId, via: 'receipt', at: AT })));
    }
    await store.close();
    const balanceAfterSeed = DEPOSIT - BigInt(OTPS) * 22_000n;

    const send = async (base: string, phone: string) => {
      const res = await post(base, '/api/v1/send-otp', apiKey, { phone, code: '123456', channel: 'sms' });
      expect(res.status).toBe(200);
    };
    const loads = async (base: string, snapshot: string) =>
      seriesValue(await (await fetch(`${base}/metrics`)).text(), `nexo_command_state_load_seconds_count{snapshot="${snapshot}"}`);

    const first = await startServer(env);
    try {
      await send(first.base, '0912000001');
      expect(await loads(first.base, 'none')).toBe(1);
      const text = await (await fetch(`${first.base}/metrics`)).text();
      expect(seriesValue(text, 'nexo_command_snapshot_seconds_count')).toBe(1);
    } finally {
      await first.stop();
    }
    const db = new Database(join(dir, 'state.db'), { readonly: true });
    const row = db.prepare('SELECT revision FROM stream_snapshots WHERE stream_id = ?').get(stream) as { revision: number } | undefined;
    db.close();
    expect(row?.revision).toBeGreaterThanOrEqual(12_000);

    const second = await startServer(env);
    try {
      await send(second.base, '0912000002');
      expect(await loads(second.base, 'used')).toBe(1);
      expect(await loads(second.base, 'none')).toBe(0);
      // The two sends of this test are charged and open (no workers here); the seeded ones stay settled.
      const balance = (await (await get(second.base, '/api/v1/balance', apiKey)).json()) as { balance: string };
      expect(Math.round(Number(balance.balance) * 1e6)).toBe(Number(balanceAfterSeed - 2n * 22_000n));
    } finally {
      await second.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
