/**
 * An API replica on EventStoreDB (the distributed mode, workers elsewhere)
 * while the node is out of reach for a few seconds, then back with its log,
 * over real HTTP: sends are answered 503 with Retry-After, saying nothing was
 * changed, and nothing is appended; readiness says the store is why; no
 * answer is a 500. Once the node is back the replica takes sends again by
 * itself, with no restart. The node is the in-memory stand-in of its gRPC
 * service (libs/eventstore/test/fake-eventstoredb.server.ts).
 */
import { until } from '#testing';
import { freshPhone, get, post, signup, type TestServer } from './harness.js';
import { type Replicas, startReplicas } from './replicas.harness.js';

const OUTAGE_MS = 3_000;

describe('an API replica while EventStoreDB is out of reach', () => {
  let replicas: Replicas | undefined;
  let a: TestServer;

  beforeAll(async () => {
    replicas = await startReplicas();
    a = replicas.a;
  }, 60_000);

  afterAll(async () => {
    await replicas?.esdb.restart().catch(() => undefined);
    await replicas?.stop();
  }, 30_000);

  const send = async (key: string, phone: string) => {
    const res = await post(a.base, '/api/v1/send-otp', key, { phone, code: '482913', channel: 'sms' });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { ok: boolean; id?: string; error?: string; message?: string } };
  };
  const otpsInLog = async (accountId: string) => {
    const ids: string[] = [];
    for await (const e of replicas!.log.readStream(`account-${accountId}`)) if (e.type === 'OtpRequested') ids.push((e.data as { otpId: string }).otpId);
    return ids;
  };

  it('answers sends 503 with Retry-After while the node is down, appends nothing, and takes sends again once it is back', async () => {
    const { account_id, api_key } = await signup(a.base);
    const first = await send(api_key, freshPhone());
    expect(first.status).toBe(200);

    await replicas!.esdb.stop();
    try {
      const ready = await until(
        'not ready, the store named',
        async () => {
          const res = await get(a.base, '/health/ready');
          return res.status === 503 ? ((await res.json()) as Record<string, unknown>) : undefined;
        },
        { timeoutMs: 10_000, everyMs: 100 },
      );
      expect(ready).toMatchObject({ ok: false, store: false });
      const refused = await Promise.all([freshPhone('098'), freshPhone('086'), freshPhone('094')].map((p) => send(api_key, p)));
      for (const r of refused) {
        expect(r).toEqual({
          status: 503,
          retryAfter: '1',
          body: { ok: false, error: 'internal', message: 'the event log is unavailable; nothing was changed, try again' },
        });
      }
      // Reads answer from the read models or say to retry; never "a bug". For a few seconds more
      // (past the client's first reconnection backoff), as clients keep calling.
      const statuses = new Set<number>();
      for (const t0 = Date.now(); Date.now() - t0 < OUTAGE_MS; await new Promise((r) => setTimeout(r, 250))) {
        statuses.add((await send(api_key, freshPhone('088'))).status);
        for (const path of ['/api/v1/balance', `/api/v1/otp/${first.body.id}`]) statuses.add((await get(a.base, path, api_key)).status);
      }
      expect([...statuses].filter((s) => s !== 200 && s !== 503)).toEqual([]);
    } finally {
      await replicas!.esdb.restart();
    }

    const again = await until('a send taken again', async () => {
      const r = await send(api_key, freshPhone('097'));
      return r.status === 200 ? r : undefined;
    }, { timeoutMs: 15_000, everyMs: 200 });
    await until('ready again', async () => (await get(a.base, '/health/ready')).status === 200, { timeoutMs: 15_000, everyMs: 100 });
    expect((await otpsInLog(account_id)).sort()).toEqual([first.body.id, again.body.id].sort());
  }, 60_000);
});
