/**
 * Customer feedback against the money, over real HTTP: `verified: false`
 * settles nothing, a confirmation sent twice delivers once, feedback after
 * the expiry refund changes nothing, and another account's id is not found.
 * The carrier simulator sends no receipts (lostReceiptRate 1), so only
 * feedback or expiry can settle; expiry is 1 s. Signup's test credits fund
 * every OTP here, so a refund must give the credit back and move no money.
 */
import { join } from 'node:path';
import { SqliteEventStore } from '#eventstore';
import { until } from '#testing';
import { openLedgerContext } from '../../ledger/src/ledger-context.js';
import { verifyCommand } from '../../ledger/src/verify.command.js';
import { readLedger, webhookSink } from '../../worker/test/pipeline.harness.js';
import { freshPhone, get, post, signup, startServer, type TestServer } from './harness.js';

interface View {
  status: string;
  refund_reason?: string;
  history: { status: string }[];
}

describe('feedback and settlement', () => {
  let server: TestServer;
  let sink: Awaited<ReturnType<typeof webhookSink>>;

  beforeAll(async () => {
    sink = await webhookSink();
    server = await startServer({
      NEXO_EXPIRY_SECONDS: '1',
      NEXO_CARRIERS: JSON.stringify({
        providers: [{ kind: 'simulator', name: 'simulator', simulator: { timeScale: 0.001, failureRate: 0, lostReceiptRate: 1, duplicateReceiptRate: 0 } }],
      }),
    });
  });
  afterAll(async () => {
    await server?.stop();
    await sink?.close();
  });

  const customer = async () => {
    const { api_key } = await signup(server.base);
    const res = await fetch(`${server.base}/api/v1/webhook`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: sink.url }),
    });
    expect(res.status).toBe(200);
    return api_key;
  };
  const send = async (key: string) => {
    const sent = (await (await post(server.base, '/api/v1/send-otp', key, { phone: freshPhone('098'), code: '604213', channel: 'sms' })).json()) as { ok: boolean; id: string; funded_by: string };
    expect(sent).toMatchObject({ ok: true, funded_by: 'test_credit' });
    return sent.id;
  };
  const view = async (key: string, id: string) => (await (await get(server.base, `/api/v1/otp/${id}`, key)).json()) as View;
  const statusIs = (key: string, id: string, status: string, timeoutMs = 8_000) =>
    until(`${id} ${status}`, async () => {
      const v = await view(key, id);
      return v.status === status ? v : undefined;
    }, { timeoutMs, everyMs: 25 });
  const feedback = async (key: string, id: string, verified: boolean) => {
    const res = await post(server.base, `/api/v1/otp/${id}/feedback`, key, { verified });
    return { status: res.status, body: (await res.json()) as { ok: boolean; id?: string; status?: string; error?: string } };
  };
  const balance = async (key: string) => (await (await get(server.base, '/api/v1/balance', key)).json()) as { balance: string; test_credits: number; pending: string };
  const log = async () => {
    const store = SqliteEventStore.open(join(server.dataDir, 'nexo.db'), { readonly: true });
    try {
      return await readLedger(store);
    } finally {
      await store.close();
    }
  };
  const hooksOf = (id: string) => sink.hooks.map((h) => JSON.parse(h.body) as { type: string; id: string; via?: string; reason?: string; carrier?: string; channel?: string }).filter((h) => h.id === id);

  it('verified:false settles nothing: the OTP stays open and still ends refunded by expiry, with the test credit back', async () => {
    const key = await customer();
    const id = await send(key);
    const answer = await feedback(key, id, false);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ ok: true, id });
    expect(['queued', 'routed']).toContain(answer.body.status);
    expect((await log()).get(id)!.settlements).toEqual([]);
    expect(await balance(key)).toMatchObject({ balance: '0.000000', test_credits: 4 });

    const v = await statusIs(key, id, 'refunded');
    expect(v.refund_reason).toBe('expired');
    expect(await balance(key)).toMatchObject({ balance: '0.000000', test_credits: 5, pending: '0.000000' });
    expect((await log()).get(id)!.settlements.map((e) => e.type)).toEqual(['Refunded']);
  });

  /** `nexo_otp_delivered_total` for SMS via Viettel (what `send` sends), by proof. */
  const deliveredCounter = async (via: string) => {
    const text = await (await fetch(`${server.base}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('nexo_otp_delivered_total{') && l.includes('carrier="viettel"') && l.includes('channel="sms"') && l.includes(`via="${via}"`));
    return Number(line?.split(' ').pop() ?? 0);
  };

  it('verified:true twice delivers once: one Delivered (via feedback), one otp.delivered webhook, the credit spent once, expiry refunds nothing', async () => {
    const key = await customer();
    const id = await send(key);
    const countedBefore = await deliveredCounter('feedback');
    const [a, b] = [await feedback(key, id, true), await feedback(key, id, true)];
    // SREs see it where every delivery is counted, once (the second confirmation appends nothing).
    expect(await deliveredCounter('feedback')).toBe(countedBefore + 1);
    expect(a).toEqual({ status: 200, body: { ok: true, id, status: 'delivered' } });
    expect(b).toEqual({ status: 200, body: { ok: true, id, status: 'delivered' } });
    // Past the expiry deadline: the expiry worker has had its chance to refund.
    await new Promise((r) => setTimeout(r, 2_000));
    const f = (await log()).get(id)!;
    expect(f.settlements.map((e) => [e.type, (e.data as { via?: string }).via])).toEqual([['Delivered', 'feedback']]);
    expect(f.otpEvents.filter((e) => e.type === 'Expired')).toEqual([]);
    expect(await balance(key)).toMatchObject({ balance: '0.000000', test_credits: 4, pending: '0.000000' });
    expect((await view(key, id)).status).toBe('delivered');
    await until(
      'otp.delivered webhook',
      async () => (hooksOf(id).some((h) => h.type === 'otp.delivered') ? true : undefined),
      { timeoutMs: 10_000, everyMs: 25 },
    );
    await new Promise((r) => setTimeout(r, 200));
    const delivered = hooksOf(id).filter((h) => h.type === 'otp.delivered');
    expect(delivered).toHaveLength(1);
    expect(delivered[0]).toMatchObject({ via: 'feedback', carrier: 'viettel', channel: 'sms' });
    expect(hooksOf(id).filter((h) => h.type === 'otp.refunded')).toEqual([]);
  });

  it('feedback after the expiry refund is answered with the refunded status and moves nothing', async () => {
    const key = await customer();
    const id = await send(key);
    await statusIs(key, id, 'refunded');
    const before = await balance(key);
    expect(before).toMatchObject({ balance: '0.000000', test_credits: 5, pending: '0.000000' });
    const answer = await feedback(key, id, true);
    expect(answer).toEqual({ status: 200, body: { ok: true, id, status: 'refunded' } });
    await new Promise((r) => setTimeout(r, 300));
    expect(await balance(key)).toEqual(before);
    const f = (await log()).get(id)!;
    expect(f.settlements.map((e) => e.type)).toEqual(['Refunded']);
    const v = await view(key, id);
    expect(v.status).toBe('refunded');
    expect(v.history.map((h) => h.status)).toEqual(['queued', 'routed', 'refunded']);
    await until(
      'otp.refunded webhook',
      async () => (hooksOf(id).some((h) => h.type === 'otp.refunded') ? true : undefined),
      { timeoutMs: 10_000, everyMs: 25 },
    );
    expect(hooksOf(id).filter((h) => h.type === 'otp.delivered')).toEqual([]);
  });

  it("feedback on another account's OTP is not_found and settles nothing", async () => {
    const owner = await customer();
    const other = await customer();
    const id = await send(owner);
    const answer = await feedback(other, id, true);
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ ok: false, error: 'not_found' });
    expect((await log()).get(id)!.settlements).toEqual([]);
    expect(await balance(other)).toMatchObject({ test_credits: 5 });
    // The owner's OTP is untouched by it: it still expires and is refunded.
    expect((await statusIs(owner, id, 'refunded')).refund_reason).toBe('expired');
  });

  it('ledger verify agrees with the read models after all of it', async () => {
    const ctx = await openLedgerContext({ db: join(server.dataDir, 'nexo.db') }, () => undefined);
    try {
      const result = await verifyCommand(ctx);
      expect(result.violations).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});
