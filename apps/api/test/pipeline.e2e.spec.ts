/**
 * The whole flow on the embedded default, over real HTTP: send → dispatch to
 * the carrier simulator → receipt → settlement → signed webhook, and refunds
 * for codes that do not reach the user.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteEventStore } from '#eventstore';
import { ThreadedProjector } from '#projections';
import { verifyWebhook } from '#worker';
import { until } from '#testing';
import { webhookSink } from '../../worker/test/pipeline.harness.js';
import { freshPhone, get, post, signup, startServer, type TestServer } from './harness.js';

/** The simulator at a thousandth of its latencies, delivering every OTP, each receipt once. */
const RELIABLE_SIMULATOR = JSON.stringify({
  providers: [{ kind: 'simulator', name: 'simulator', simulator: { timeScale: 0.001, failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0 } }],
});

/** `PUT /api/v1/webhook` for the key's account. */
const putWebhook = (base: string, apiKey: string, url: string) =>
  fetch(`${base}/api/v1/webhook`, { method: 'PUT', headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ url }) });

describe('delivery pipeline, embedded', () => {
  let server: TestServer;
  let sink: Awaited<ReturnType<typeof webhookSink>>;

  beforeAll(async () => {
    sink = await webhookSink();
    server = await startServer({
      NEXO_CARRIERS: JSON.stringify({
        providers: [{ kind: 'simulator', name: 'simulator', simulator: { timeScale: 0.001, failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0.5 } }],
      }),
    });
  });
  afterAll(async () => {
    await server.stop();
    await sink.close();
  });

  it('delivers, settles and tells the customer with signed webhooks', async () => {
    const { api_key } = await signup(server.base);
    const hook = await (
      await fetch(`${server.base}/api/v1/webhook`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ url: sink.url }),
      })
    ).json();
    const sent = await (await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '135790' })).json();
    expect(sent).toMatchObject({ ok: true, carrier: 'viettel', channel: 'voice' });

    const view = await until('delivered', async () => {
      const v = await (await get(server.base, `/api/v1/otp/${sent.id}`, api_key)).json();
      return v.status === 'delivered' ? v : undefined;
    }, { timeoutMs: 15_000, everyMs: 25 });
    expect(view.history.map((h: { status: string }) => h.status)).toEqual(['queued', 'routed', 'delivered']);
    expect(view.delivered_at).toEqual(expect.any(String));

    const hooks = await until('two webhooks', async () => {
      const mine = sink.hooks.filter((h) => JSON.parse(h.body).id === sent.id);
      return mine.length >= 2 ? mine : undefined;
    }, { timeoutMs: 15_000, everyMs: 25 });
    const types = hooks.map((h) => JSON.parse(h.body).type).sort();
    expect(types).toEqual(['otp.delivered', 'otp.routed']);
    for (const h of hooks) {
      expect(verifyWebhook(hook.secret, h.body, h.signature, Math.floor(Date.now() / 1000))).toBe(true);
      expect(JSON.parse(h.body)).toMatchObject({ id: sent.id, carrier: 'viettel', channel: 'voice', event_id: expect.any(String) });
      expect(h.body).not.toContain('135790');
    }
    const bal = await (await get(server.base, '/api/v1/balance', api_key)).json();
    expect(bal).toMatchObject({ test_credits: 4, pending: '0.000000' });

    const metrics = await (await get(server.base, '/metrics')).text();
    expect(metrics).toMatch(/nexo_otp_requested_total\{carrier="viettel",channel="voice"\} [1-9]/);
    expect(metrics).toMatch(/nexo_otp_delivered_total\{carrier="viettel",channel="voice",via="voice_answer"\} [1-9]/);
    expect(metrics).toMatch(/nexo_http_request_duration_seconds_count\{method="POST",route="\/api\/v1\/send-otp",status="200"\} [1-9]/);
    expect(metrics).not.toMatch(/acc_|nxo_live_|\+84/);
    // The webhook thread's attempt outcomes reach this registry (gathered there for up to 50 ms).
    await until(
      'webhook successes in /metrics',
      async () => /nexo_webhook_attempts_total\{outcome="success"\} ([2-9]|\d\d)/.test(await (await get(server.base, '/metrics')).text()),
      { timeoutMs: 5_000, everyMs: 25 },
    );
  });

  it('DELETE /api/v1/webhook stops the webhooks (per-send URLs refused until a new PUT); it is idempotent; a new PUT sends again', async () => {
    const { api_key } = await signup(server.base);
    const put = async () => (await putWebhook(server.base, api_key, sink.url)).json();
    const remove = async () => {
      const res = await fetch(`${server.base}/api/v1/webhook`, { method: 'DELETE', headers: { Authorization: `Bearer ${api_key}` } });
      return { status: res.status, body: await res.json() };
    };
    const delivered = async (id: string) =>
      until('delivered', async () => ((await (await get(server.base, `/api/v1/otp/${id}`, api_key)).json()).status === 'delivered' ? true : undefined), { timeoutMs: 15_000, everyMs: 25 });
    await put();
    expect(await remove()).toEqual({ status: 200, body: { ok: true, url: null } });
    expect(await remove()).toEqual({ status: 200, body: { ok: true, url: null } });
    const silent = await (await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '1357' })).json();
    const perSend = await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '1357', webhook_url: sink.url });
    expect([perSend.status, (await perSend.json()).error]).toEqual([400, 'invalid_request']);
    await delivered(silent.id);

    const { secret } = await put();
    const heard = await (await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '2468' })).json();
    await delivered(heard.id);
    const hooks = await until('the new webhooks', async () => {
      const mine = sink.hooks.filter((h) => JSON.parse(h.body).id === heard.id);
      return mine.length >= 2 ? mine : undefined;
    }, { timeoutMs: 15_000, everyMs: 25 });
    for (const h of hooks) expect(verifyWebhook(secret, h.body, h.signature, Math.floor(Date.now() / 1000))).toBe(true);
    expect(sink.hooks.filter((h) => JSON.parse(h.body).id === silent.id)).toEqual([]);
  });

  it('customer feedback proves delivery', async () => {
    const { api_key } = await signup(server.base);
    const sent = await (await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('090'), code: '2468' })).json();
    const res = await post(server.base, `/api/v1/otp/${sent.id}/feedback`, api_key, { verified: true });
    expect(res.status).toBe(200);
    const view = await until('settled', async () => {
      const v = await (await get(server.base, `/api/v1/otp/${sent.id}`, api_key)).json();
      return v.status === 'delivered' ? v : undefined;
    }, { timeoutMs: 15_000, everyMs: 25 });
    expect(view.status).toBe('delivered');
  });

  it('never logs a code, a key or a full phone number (I9)', () => {
    const logs = server.logs.join('');
    expect(logs).not.toMatch(/nxo_live_[A-Za-z0-9_-]{20}/);
    expect(logs).not.toContain('135790');
    expect(logs).not.toMatch(/\+849\d{8}|\b09\d{8}\b/);
  });
});

describe('webhook thread', () => {
  it('logs through the service, and after a restart goes on from its checkpoint: no webhook sent twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexo-webhook-thread-'));
    const sink = await webhookSink();
    const env = {
      NEXO_DATA_DIR: dir,
      NEXO_CARRIERS: RELIABLE_SIMULATOR,
    };
    const hooksOf = (id: string) =>
      until(
        `two webhooks for ${id}`,
        async () => (sink.hooks.filter((h) => JSON.parse(h.body).id === id).length >= 2 ? true : undefined),
        { timeoutMs: 15_000, everyMs: 25 },
      );
    try {
      const first = await startServer(env);
      const { api_key } = await signup(first.base);
      await putWebhook(first.base, api_key, sink.url);
      const a = await (await post(first.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '101010' })).json();
      await hooksOf(a.id);
      expect((await get(first.base, '/health/ready')).status).toBe(200);
      const started = first.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'webhook thread started');
      expect(started).toMatchObject({ thread: 'webhooks', from: '0' });
      await first.stop();

      const second = await startServer(env);
      const b = await (await post(second.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '202020' })).json();
      await hooksOf(b.id);
      const resumed = second.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'webhook thread started');
      expect(BigInt(resumed.from)).toBeGreaterThan(0n);
      // A moment for anything the restarted relay would wrongly send again.
      await new Promise((r) => setTimeout(r, 300));
      await second.stop();
      const ids = sink.hooks.map((h) => JSON.parse(h.body).event_id);
      expect(ids).toHaveLength(4);
      expect(new Set(ids).size).toBe(4);
    } finally {
      await sink.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('webhook thread that dies', () => {
  it('is started again by itself: not ready meanwhile, then every webhook of the OTPs sent meanwhile delivered, none twice', async () => {
    const sink = await webhookSink();
    const server = await startServer({
      NEXO_CARRIERS: RELIABLE_SIMULATOR,
    });
    const hooksOf = (ids: string[]) =>
      until(`two webhooks each for ${ids.length} OTPs`, async () => ids.every((id) => sink.hooks.filter((h) => JSON.parse(h.body).id === id).length >= 2) || undefined, {
        timeoutMs: 15_000,
        everyMs: 25,
      });
    try {
      const { api_key } = await signup(server.base);
      await putWebhook(server.base, api_key, sink.url);
      const send = async (prefix: string) => (await (await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone(prefix), code: '303030' })).json()).id as string;
      const before = await send('098');
      await hooksOf([before]);
      // A moment for the thread to record them delivered: a crash between a POST and its record sends it again (at least once).
      await new Promise((r) => setTimeout(r, 300));

      await server.running.core.webhookThread!.crash();
      expect((await get(server.base, '/health/ready')).status).toBe(503);
      // Sends go on meanwhile; their webhooks wait in the log.
      const during = [await send('086'), await send('094'), await send('097')];
      await hooksOf(during);
      await until('ready again', async () => (await get(server.base, '/health/ready')).status === 200 || undefined, { timeoutMs: 10_000, everyMs: 50 });
      const logged = server.logs.map((l) => JSON.parse(l) as { level: number; msg: string; restartInMs?: number });
      expect(logged.filter((l) => l.msg.startsWith('the webhook thread stopped'))).toEqual([expect.objectContaining({ level: 50, restartInMs: 1_000 })]);
      expect(logged.filter((l) => l.msg === 'webhook thread started')).toHaveLength(2);
      expect(await restarts(server)).toEqual({ 'nexo-log-writer': 0, 'nexo-projector': 0, 'nexo-webhooks': 1 });

      await new Promise((r) => setTimeout(r, 300));
      const ids = sink.hooks.map((h) => JSON.parse(h.body).event_id);
      expect(ids).toHaveLength(8);
      expect(new Set(ids).size).toBe(8);
    } finally {
      await server.stop();
      await sink.close();
    }
  });
});

describe('webhook thread that dies with a POST in flight', () => {
  it('sends that event again once started again (at least once): nothing it had not finished is lost', async () => {
    // The first webhook (the OTP's `otp.routed`) is never answered: in flight when the thread dies.
    const sink = await webhookSink({ hold: (n) => n === 0 });
    const server = await startServer({ NEXO_CARRIERS: RELIABLE_SIMULATOR });
    const events = () => sink.hooks.map((h) => JSON.parse(h.body) as { event_id: string; id: string; type: string });
    try {
      const { api_key } = await signup(server.base);
      await putWebhook(server.base, api_key, sink.url);
      const { id } = (await (await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '404040' })).json()) as { id: string };
      await until('both webhooks posted, the first held', async () => (events().filter((e) => e.id === id).length >= 2 ? true : undefined), { timeoutMs: 15_000, everyMs: 25 });
      const held = events()[0];
      expect(held.type).toBe('otp.routed');
      // Well past the sender's checkpoint saves: the held POST keeps the relay's checkpoint below its event.
      await new Promise((r) => setTimeout(r, 300));

      await server.running.core.webhookThread!.crash();
      await until('ready again', async () => (await get(server.base, '/health/ready')).status === 200 || undefined, { timeoutMs: 10_000, everyMs: 50 });
      await until('the held event posted again', async () => (events().filter((e) => e.event_id === held.event_id).length >= 2 ? true : undefined), {
        timeoutMs: 15_000,
        everyMs: 25,
      });
      // Every event of the OTP reached the endpoint; the one in flight (and what the log held after it) at least twice.
      expect(new Set(events().map((e) => e.type))).toEqual(new Set(['otp.routed', 'otp.delivered']));
    } finally {
      await server.stop();
      await sink.close();
    }
  });
});

describe('log writer thread that dies', () => {
  it('is started again on the next send: a send refused meanwhile is 503, then sends are taken and every accepted OTP delivered', async () => {
    const server = await startServer({
      NEXO_CARRIERS: RELIABLE_SIMULATOR,
    });
    try {
      const { api_key } = await signup(server.base);
      const send = async () => {
        const res = await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '404040' });
        return { status: res.status, body: (await res.json()) as { id?: string; error?: string } };
      };
      const accepted = [(await send()).body.id!];
      const store = server.running.core.store;
      if (!(store instanceof SqliteEventStore)) throw new Error('the embedded default runs on the SQLite log');
      await store.crashWriterThread();
      // Within a second a new thread takes the appends; until then a send is 503 (nothing written) or taken.
      const after = await until('a send taken again', async () => {
        const r = await send();
        expect([200, 503]).toContain(r.status);
        return r.status === 200 ? r : undefined;
      }, { timeoutMs: 5_000, everyMs: 100 });
      accepted.push(after.body.id!, (await send()).body.id!);
      await until('every accepted OTP delivered', async () => {
        const statuses = await Promise.all(accepted.map(async (id) => ((await (await get(server.base, `/api/v1/otp/${id}`, api_key)).json()) as { status: string }).status));
        return statuses.every((st) => st === 'delivered') || undefined;
      }, { timeoutMs: 15_000, everyMs: 50 });
      expect((await get(server.base, '/health/ready')).status).toBe(200);
      expect(await restarts(server)).toEqual({ 'nexo-log-writer': 1, 'nexo-projector': 0, 'nexo-webhooks': 0 });
      const logged = server.logs.map((l) => JSON.parse(l) as { level: number; msg: string });
      expect(logged.filter((l) => l.msg.startsWith('the log writer thread stopped'))).toEqual([expect.objectContaining({ level: 50 })]);
    } finally {
      await server.stop();
    }
  });
});

describe('projector thread that dies', () => {
  it('is started again by itself, and the read models then show what was sent meanwhile', async () => {
    const server = await startServer({
      NEXO_CARRIERS: RELIABLE_SIMULATOR,
    });
    try {
      const { api_key } = await signup(server.base);
      const projector = server.running.core.projections.projector;
      if (!(projector instanceof ThreadedProjector)) throw new Error('the embedded default projects on its own thread');
      await projector.crash();
      // Sends are taken meanwhile (readiness follows the read models' lag, which grows with them): they show once it runs again.
      const res = await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('098'), code: '505050' });
      expect(res.status).toBe(200);
      const { id } = (await res.json()) as { id: string };
      await until('delivered in the read models', async () => ((await (await get(server.base, `/api/v1/otp/${id}`, api_key)).json()) as { status?: string }).status === 'delivered' || undefined, {
        timeoutMs: 15_000,
        everyMs: 50,
      });
      await until('ready again', async () => (await get(server.base, '/health/ready')).status === 200 || undefined, { timeoutMs: 10_000, everyMs: 50 });
      expect(await restarts(server)).toEqual({ 'nexo-log-writer': 0, 'nexo-projector': 1, 'nexo-webhooks': 0 });
    } finally {
      await server.stop();
    }
  });
});

/** `nexo_thread_restarts_total` by thread, as /metrics shows it. */
async function restarts(server: TestServer): Promise<Record<string, number>> {
  const text = await (await get(server.base, '/metrics')).text();
  return Object.fromEntries([...text.matchAll(/^nexo_thread_restarts_total\{thread="([^"]+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

describe('delivery pipeline, failures refund', () => {
  let server: TestServer;
  afterEach(async () => server.stop());

  it('refunds every OTP the carrier could not deliver, and the balance comes back', async () => {
    server = await startServer({
      NEXO_CARRIERS: JSON.stringify({ providers: [{ kind: 'simulator', name: 'simulator', simulator: { timeScale: 0.001, failureRate: 1, lostReceiptRate: 0 } }] }),
    });
    const { api_key } = await signup(server.base);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await (await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone(), code: '112233' })).json()).id);
    for (const id of ids) {
      const v = await until('refunded', async () => {
        const r = await (await get(server.base, `/api/v1/otp/${id}`, api_key)).json();
        return r.status === 'refunded' ? r : undefined;
      }, { timeoutMs: 15_000, everyMs: 25 });
      expect(v.refund_reason).toBe('undelivered');
    }
    const bal = await (await get(server.base, '/api/v1/balance', api_key)).json();
    expect(bal.test_credits).toBe(5);
  });

  it('expires and refunds an OTP whose receipt never comes (I6)', async () => {
    server = await startServer({
      NEXO_EXPIRY_SECONDS: '1',
      NEXO_CARRIERS: JSON.stringify({ providers: [{ kind: 'simulator', name: 'simulator', simulator: { timeScale: 0.001, lostReceiptRate: 1 } }] }),
    });
    const { api_key } = await signup(server.base);
    const sent = await (await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone(), code: '445566' })).json();
    const v = await until('expired', async () => {
      const r = await (await get(server.base, `/api/v1/otp/${sent.id}`, api_key)).json();
      return r.status === 'refunded' ? r : undefined;
    }, { timeoutMs: 15_000, everyMs: 25 });
    expect(v.refund_reason).toBe('expired');
    expect((await (await get(server.base, '/api/v1/balance', api_key)).json()).test_credits).toBe(5);
  });
});
