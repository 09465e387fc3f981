/**
 * The per-phone answer across a restart of the embedded default: the API's
 * limiter lives in memory, and the dispatcher keeps each phone's window in its
 * file. After a restart the API takes the dispatcher's windows back, so a
 * second send to the phone within the interval is still `429 rate_limited`
 * (not accepted, charged and parked until the window opens).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '#testing';
import { get, post, signup, startServer } from './harness.js';

const SIMULATOR = JSON.stringify({ providers: [{ kind: 'simulator', name: 'simulator', simulator: { timeScale: 0.001, failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0 } }] });

it('refuses a second send to a phone within the interval after a restart, with the time left', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nexo-phone-restart-'));
  const env = { NEXO_DATA_DIR: dir, NEXO_CARRIERS: SIMULATOR };
  try {
    const first = await startServer(env);
    const { api_key } = await signup(first.base);
    const sent = await post(first.base, '/api/v1/send-otp', api_key, { phone: '0912000777', code: '111111', channel: 'sms' });
    expect(sent.status).toBe(200);
    const { id } = (await sent.json()) as { id: string };
    await until('routed', async () => {
      const { status } = (await (await get(first.base, `/api/v1/otp/${id}`, api_key)).json()) as { status: string };
      return status === 'queued' ? undefined : status;
    });
    await first.stop();

    const second = await startServer(env);
    try {
      const again = await post(second.base, '/api/v1/send-otp', api_key, { phone: '+84912000777', code: '222222', channel: 'sms' });
      const body = (await again.json()) as { ok: boolean; error: string; retry_after: number };
      expect({ status: again.status, ...body }).toMatchObject({ status: 429, ok: false, error: 'rate_limited' });
      expect(body.retry_after).toBeGreaterThanOrEqual(25);
      expect(body.retry_after).toBeLessThanOrEqual(30);
      // Another phone is not held.
      expect((await post(second.base, '/api/v1/send-otp', api_key, { phone: '0912000778', code: '333333', channel: 'sms' })).status).toBe(200);
    } finally {
      await second.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
