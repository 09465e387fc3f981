/**
 * The whole flow through each wire face of the carrier simulator, with real
 * sockets on loopback: the HTTP API accepts OTPs, the dispatcher submits them
 * over SMPP (`submit_sm`) or to an HTTP aggregator, and the receipts come
 * back as `deliver_sm` on the same SMPP session or as signed callbacks on
 * `POST /api/v1/carriers/:provider/receipts`, until each OTP is delivered.
 */
import { createHmac } from 'node:crypto';
import { HttpSimulator, SmppSimulator } from '#carriers';
import { until } from '#testing';
import { freshPhone, get, post, signup, startServer, type TestServer } from '../../api/test/harness.js';

const SECRET = 'aggregator-shared-secret-0123456789';
const OTHER_SECRET = 'another-aggregator-secret-9876543210';
const SMS_ONLY = (provider: string) => ({
  viettel: { sms: [provider] },
  vinaphone: { sms: [provider] },
  mobifone: { sms: [provider] },
  vietnamobile: { sms: [provider] },
});
const FAST = { timeScale: 0.001, failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0.3 };

async function sendMany(server: TestServer, n: number, prefixes: string[]): Promise<{ id: string; key: string }[]> {
  const out: { id: string; key: string }[] = [];
  for (let a = 0; a * 5 < n; a++) {
    const { api_key } = await signup(server.base);
    const batch = await Promise.all(
      Array.from({ length: Math.min(5, n - a * 5) }, async (_, i) => {
        const res = await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone(prefixes[(a * 5 + i) % prefixes.length]), code: '907153' });
        const body = (await res.json()) as { ok: boolean; id: string; channel: string };
        expect(body).toMatchObject({ ok: true, channel: 'sms' });
        return { id: body.id, key: api_key };
      }),
    );
    out.push(...batch);
  }
  return out;
}

async function allDelivered(server: TestServer, sent: { id: string; key: string }[]): Promise<{ status: string; history: { status: string }[] }[]> {
  return until(
    'every OTP delivered',
    async () => {
      const views = await Promise.all(sent.map(async (s) => (await get(server.base, `/api/v1/otp/${s.id}`, s.key)).json()));
      return views.every((v) => v.status === 'delivered') ? views : undefined;
    },
    { timeoutMs: 20_000, everyMs: 100 },
  );
}

function noSecretsLogged(server: TestServer): void {
  const logs = server.logs.join('');
  expect(logs).not.toContain('907153');
  expect(logs).not.toMatch(/\+84\d{9}|\b0\d{9}\b/);
}

describe('through the SMPP face', () => {
  let smsc: SmppSimulator;
  let server: TestServer;

  beforeAll(async () => {
    smsc = await SmppSimulator.start({ systemId: 'nexo', password: 'secret', config: FAST, receiptIdFormat: 'decimal' });
    server = await startServer({
      NEXO_CARRIERS: JSON.stringify({
        providers: [{ kind: 'smpp', name: 'smsc', host: '127.0.0.1', port: smsc.port, systemId: 'nexo', password: 'secret', sourceAddr: 'NEXO' }],
        routes: SMS_ONLY('smsc'),
      }),
    });
  });
  afterAll(async () => {
    await server?.stop();
    await smsc?.close();
  });

  it('submits each OTP once with submit_sm and settles it from the deliver_sm receipt', async () => {
    const sent = await sendMany(server, 15, ['098', '091', '090', '092']);
    const views = await allDelivered(server, sent);
    for (const v of views) expect(v.history.map((h) => h.status)).toEqual(['queued', 'routed', 'delivered']);
    const stats = smsc.stats();
    expect(stats.accepted).toBe(15);
    expect(stats.binds).toBe(1);
    // Receipts are acknowledged only once they are on the bus; duplicates included.
    expect(stats.receiptsAcked).toBeGreaterThanOrEqual(15);
    expect(stats.receiptsNacked).toBe(0);
    noSecretsLogged(server);
  });
});

describe('through the HTTP face', () => {
  let aggregator: HttpSimulator;
  let server: TestServer;
  let callback: string;

  beforeAll(async () => {
    aggregator = await HttpSimulator.start({ secret: SECRET, config: FAST });
    server = await startServer({
      NEXO_CARRIERS: JSON.stringify({
        providers: [
          { kind: 'http', name: 'aggr', baseUrl: aggregator.url, secret: SECRET, timeoutMs: 2_000 },
          // Configured, in no route: it never gets an OTP, but can call back.
          { kind: 'http', name: 'other', baseUrl: aggregator.url, secret: OTHER_SECRET, timeoutMs: 2_000 },
        ],
        routes: SMS_ONLY('aggr'),
      }),
    });
    callback = `${server.base}/api/v1/carriers/aggr/receipts`;
    aggregator.setCallbackUrl(callback);
  });
  afterAll(async () => {
    await server?.stop();
    await aggregator?.close();
  });

  it('submits to the aggregator and settles from its signed receipt callbacks', async () => {
    const sent = await sendMany(server, 15, ['098', '091', '090', '092']);
    await allDelivered(server, sent);
    const stats = aggregator.stats();
    expect(stats.accepted).toBe(15);
    expect(stats.receiptsSent).toBeGreaterThanOrEqual(15);
    expect(stats.receiptsFailed).toBe(0);
    noSecretsLogged(server);
  });

  it('answers 401 to a callback with a bad signature and records nothing', async () => {
    const [target] = await sendMany(server, 1, ['091']);
    const body = JSON.stringify({ message_id: 'forged-message-1', reference: `${target.id}:1`, status: 'UNDELIV' });
    const t = Math.floor(Date.now() / 1000);
    const wrongKey = createHmac('sha256', 'not-the-shared-secret-at-all').update(`${t}.${body}`).digest('hex');
    for (const signature of [`t=${t},v1=${wrongKey}`, undefined, 'garbage']) {
      const res = await fetch(callback, { method: 'POST', headers: { 'content-type': 'application/json', ...(signature ? { 'x-signature': signature } : {}) }, body });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ ok: false, error: 'unauthorized' });
    }
    // A good signature over the same bytes is taken: the refusal was the signature's doing.
    const good = createHmac('sha256', SECRET).update(`${t}.${body}`).digest('hex');
    /** Times the receipts worker looked at the forged receipt: it refuses it (the OTP went out under another message id) and logs why. */
    const forgedTaken = () =>
      server.logs.filter((l) => l.includes('receipt refused') && l.includes('forged-message-1')).length +
      server.running.core.readDb.prepare<[string], { n: number }>('SELECT count(*) AS n FROM bus_nexo_otp_receipts WHERE key = ?').get('forged-message-1')!.n;
    expect(forgedTaken()).toBe(0);

    await allDelivered(server, [target]);
    const receipts: string[] = [];
    for await (const e of server.running.core.store.readStream(`otp-${target.id}`)) {
      if (e.type === 'ReceiptReceived') receipts.push((e.data as { providerMessageId: string }).providerMessageId);
    }
    expect(receipts.length).toBeGreaterThan(0);
    expect(receipts).not.toContain('forged-message-1');

    const accepted = await fetch(callback, { method: 'POST', headers: { 'content-type': 'application/json', 'x-signature': `t=${t},v1=${good}` }, body });
    expect(accepted.status).toBe(200);
    await until('the forged receipt refused', () => (forgedTaken() === 1 ? true : undefined), { timeoutMs: 5_000, everyMs: 20 });
  });

  it('refuses a signed receipt from another upstream that names an OTP routed through this one, and takes the genuine one', async () => {
    const [target] = await sendMany(server, 1, ['090']);
    await allDelivered(server, [target]);
    const events = async () => {
      const out: { type: string; data: Record<string, unknown> }[] = [];
      for await (const e of server.running.core.store.readStream(`otp-${target.id}`)) out.push({ type: e.type, data: e.data as Record<string, unknown> });
      return out;
    };
    const routed = (await events()).find((e) => e.type === 'Routed')!.data as { providerMessageId: string; provider: string; attempt: number };
    expect(routed).toMatchObject({ provider: 'aggr', attempt: 1 });
    const callBack = async (provider: string, secret: string, receipt: object) => {
      const body = JSON.stringify(receipt);
      const t = Math.floor(Date.now() / 1000);
      const signature = `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
      const res = await fetch(`${server.base}/api/v1/carriers/${provider}/receipts`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-signature': signature }, body });
      expect(res.status).toBe(200);
    };
    const reference = `${target.id}:${routed.attempt}`;
    // Another upstream, correctly signed with its own secret: the routed message's id, then one of its own.
    await callBack('other', OTHER_SECRET, { message_id: routed.providerMessageId, reference, status: 'UNDELIV' });
    await callBack('other', OTHER_SECRET, { message_id: 'other-1', reference, status: 'DELIVRD' });
    // The upstream the OTP went through, with a status it had not sent yet: recorded.
    await callBack('aggr', SECRET, { message_id: routed.providerMessageId, reference, status: 'ACCEPTD' });

    const refusals = () => server.logs.filter((l) => l.includes('receipt refused') && l.includes(target.id));
    await until('both refusals logged and the genuine receipt recorded', async () =>
      refusals().length === 2 && (await events()).some((e) => e.type === 'ReceiptReceived' && e.data.status === 'accepted') ? true : undefined,
    );
    const receipts = (await events()).filter((e) => e.type === 'ReceiptReceived').map((e) => `${e.data.providerMessageId}|${e.data.status}`);
    expect(receipts).toContain(`${routed.providerMessageId}|accepted`);
    expect(receipts).not.toContain(`${routed.providerMessageId}|undelivered`);
    expect(receipts).not.toContain('other-1|delivered');
    for (const line of refusals()) expect(JSON.parse(line)).toMatchObject({ level: 40, provider: 'other', otpId: target.id });
    expect(((await (await get(server.base, `/api/v1/otp/${target.id}`, target.key)).json()) as { status: string }).status).toBe('delivered');
    // Refused, not failing: nothing is kept for a retry or held aside.
    expect(server.running.core.readDb.prepare<[], { n: number }>('SELECT count(*) AS n FROM unmatched_receipts').get()!.n).toBe(0);
  });
});
