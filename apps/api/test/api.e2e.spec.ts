/** The public API over real HTTP (API.md): the sample flow, every error code, idempotency, limits. */
import { CommandBus } from '@nestjs/cqrs';
import { requestHashKey, sha256Hex } from '#security';
import { requestHash, SEND_OTP_FIELDS } from '../src/http/schemas.js';
import { SendOtp } from '../src/otp/send-otp.handler.js';
import { get, post, signup, startServer, freshPhone, type TestServer } from './harness.js';

let server: TestServer;
let BASE: string;

beforeAll(async () => {
  // The API alone: with the delivery workers off, the log changes only through the requests under test.
  server = await startServer({ NEXO_KEY_RATE_PER_SECOND: '1000', NEXO_KEY_BURST: '2000', NEXO_WORKERS: 'off' });
  BASE = server.base;
});
afterAll(async () => server.stop());

/** The data of an OTP's event of this type, from its account's stream. */
async function findEvent(otpId: string, type: string): Promise<Record<string, unknown>> {
  for await (const e of server.running.core.store.readAll()) if (e.type === type && (e.data as { otpId?: string }).otpId === otpId) return e.data as Record<string, unknown>;
  throw new Error(`no ${type} for ${otpId}`);
}

/** The account and key id behind an API key, as the guard finds them. */
async function authOf(apiKey: string): Promise<{ accountId: string; keyId: string }> {
  await server.running.core.caughtUp();
  const key = server.running.core.reads.apiKey(sha256Hex(apiKey));
  if (!key) throw new Error('no such key');
  return { accountId: key.accountId, keyId: key.keyId };
}

describe('the sample customers copy from API.md', () => {
  it('works verbatim', async () => {
    const { api_key } = await signup(BASE);
    process.env.NEXO_KEY = api_key;
    const user = { phone: '+84 912 345 678' };
    const code = '482913';
    async function sendCode() {
      const res = await fetch(`${BASE}/api/v1/send-otp`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${process.env.NEXO_KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ phone: user.phone, code }),
      });
      const data = await res.json();
      if (!data.ok) throw new Error(data.error);
      return { deliveryId: data.id, carrier: data.carrier };
    }
    const sent = await sendCode();
    expect(sent.carrier).toBe('vinaphone');
    expect(sent.deliveryId).toMatch(/^otp_/);
    delete process.env.NEXO_KEY;
  });
});

describe('signup and accounts', () => {
  it('gives 5 test credits, a key shown once, and a zero balance', async () => {
    const res = await post(BASE, '/api/v1/signup', undefined, {});
    expect(res.status).toBe(201);
    const body = await res.json();
    expect(body).toEqual({ ok: true, account_id: expect.stringMatching(/^acc_/), api_key: expect.stringMatching(/^nxo_live_/), test_credits: 5 });
    const bal = await (await get(BASE, '/api/v1/balance', body.api_key)).json();
    expect(bal).toEqual({ ok: true, balance: '0.000000', currency: 'USD', test_credits: 5, pending: '0.000000' });
  });

  it('issues extra keys and revokes them at once', async () => {
    const { api_key } = await signup(BASE);
    const res = await post(BASE, '/api/v1/keys', api_key, {});
    expect(res.status).toBe(201);
    const extra = await res.json();
    expect((await get(BASE, '/api/v1/balance', extra.api_key)).status).toBe(200);
    const del = await fetch(`${BASE}/api/v1/keys/${extra.key_id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${api_key}` } });
    expect(del.status).toBe(200);
    const after = await get(BASE, '/api/v1/balance', extra.api_key);
    expect(after.status).toBe(401);
    expect((await after.json()).error).toBe('unauthorized');
    expect((await get(BASE, '/api/v1/balance', api_key)).status).toBe(200);
  });

  it("lists the account's keys by id and prefix, so signup's key can be found and revoked", async () => {
    const { api_key } = await signup(BASE);
    const extra = await (await post(BASE, '/api/v1/keys', api_key, {})).json();
    const listed = await (await get(BASE, '/api/v1/keys', extra.api_key)).json();
    expect(listed).toEqual({
      ok: true,
      keys: [
        { key_id: expect.stringMatching(/^key_/), prefix: api_key.slice(0, 13), revoked: false },
        { key_id: extra.key_id, prefix: extra.api_key.slice(0, 13), revoked: false },
      ],
    });
    expect(JSON.stringify(listed)).not.toContain(api_key.slice(13));
    const first = listed.keys[0].key_id;
    expect((await fetch(`${BASE}/api/v1/keys/${first}`, { method: 'DELETE', headers: { Authorization: `Bearer ${extra.api_key}` } })).status).toBe(200);
    expect((await get(BASE, '/api/v1/balance', api_key)).status).toBe(401);
    expect((await (await get(BASE, '/api/v1/keys', extra.api_key)).json()).keys[0]).toMatchObject({ key_id: first, revoked: true });
    expect((await get(BASE, '/api/v1/keys')).status).toBe(401);
  });

  it('an account holds at most 20 active keys (each has its own request rate): the 21st is 400, and revoking one makes room', async () => {
    const { api_key } = await signup(BASE);
    const extra = [];
    for (let i = 0; i < 19; i++) extra.push(await (await post(BASE, '/api/v1/keys', api_key, {})).json());
    const refused = await post(BASE, '/api/v1/keys', api_key, {});
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({ ok: false, error: 'invalid_request', message: expect.stringMatching(/at most 20 active keys/) });
    expect((await fetch(`${BASE}/api/v1/keys/${extra[0].key_id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${api_key}` } })).status).toBe(200);
    expect((await post(BASE, '/api/v1/keys', api_key, {})).status).toBe(201);
  });

  it('a per-send webhook_url needs the secret PUT /api/v1/webhook creates: refused before it, charging nothing; taken after', async () => {
    const { api_key } = await signup(BASE);
    const head = await server.running.core.store.headPosition();
    const refused = await post(BASE, '/api/v1/send-otp', api_key, { phone: freshPhone(), code: '123456', webhook_url: 'https://example.test/per-send' });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({ ok: false, error: 'invalid_request', message: expect.stringMatching(/^webhook_url: .*PUT \/api\/v1\/webhook/) });
    expect(await server.running.core.store.headPosition()).toBe(head);
    expect((await (await get(BASE, '/api/v1/balance', api_key)).json()).test_credits).toBe(5);
    await fetch(`${BASE}/api/v1/webhook`, { method: 'PUT', headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ url: 'https://example.test/hooks' }) });
    const taken = await post(BASE, '/api/v1/send-otp', api_key, { phone: freshPhone(), code: '123456', webhook_url: 'https://example.test/per-send' });
    expect(taken.status).toBe(200);
  });

  it('configures a webhook and returns its secret', async () => {
    const { api_key } = await signup(BASE);
    const res = await fetch(`${BASE}/api/v1/webhook`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: 'https://example.test/hooks/nexo' }),
    });
    expect(res.status).toBe(200);
    const first = (await res.json()) as { secret: string };
    expect(first).toEqual({ ok: true, url: 'https://example.test/hooks/nexo', secret: expect.stringMatching(/^whsec_/) });
    // Every PUT issues a new secret, the same URL too: reading the secret in use would otherwise need no trace.
    const again = await fetch(`${BASE}/api/v1/webhook`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: 'https://example.test/hooks/nexo' }),
    });
    expect(((await again.json()) as { secret: string }).secret).not.toBe(first.secret);
  });
});

describe('send-otp', () => {
  it('answers with the contract fields and picks channels by carrier', async () => {
    const { api_key } = await signup(BASE);
    const voice = await (await post(BASE, '/api/v1/send-otp', api_key, { phone: '0981234567', code: '123456' })).json();
    expect(voice).toEqual({ ok: true, id: expect.any(String), carrier: 'viettel', channel: 'voice', status: 'queued', price: '0.022000', funded_by: 'test_credit' });
    const mobi = await (await post(BASE, '/api/v1/send-otp', api_key, { phone: '84901234567', code: '1234', channel: 'auto' })).json();
    expect(mobi).toMatchObject({ ok: true, carrier: 'mobifone', channel: 'sms' });
    const sms = await (await post(BASE, '/api/v1/send-otp', api_key, { phone: '+84521234567', code: '1234567890', channel: 'sms' })).json();
    expect(sms).toMatchObject({ ok: true, carrier: 'vietnamobile', channel: 'sms' });
  });

  it('the sixth send of a new account with no deposit is insufficient_balance (402)', async () => {
    const { api_key } = await signup(BASE);
    for (let i = 0; i < 5; i++) {
      const r = await post(BASE, '/api/v1/send-otp', api_key, { phone: freshPhone(), code: '123456' });
      expect(r.status).toBe(200);
    }
    const sixth = await post(BASE, '/api/v1/send-otp', api_key, { phone: freshPhone(), code: '123456' });
    expect(sixth.status).toBe(402);
    expect(await sixth.json()).toMatchObject({ ok: false, error: 'insufficient_balance', message: expect.any(String) });
    const bal = await (await get(BASE, '/api/v1/balance', api_key)).json();
    expect(bal.test_credits).toBe(0);
  });

  it('shows the OTP to its account and not_found to another', async () => {
    const a = await signup(BASE);
    const b = await signup(BASE);
    const sent = await (await post(BASE, '/api/v1/send-otp', a.api_key, { phone: freshPhone(), code: '777777' })).json();
    const mine = await get(BASE, `/api/v1/otp/${sent.id}`, a.api_key);
    expect(mine.status).toBe(200);
    const view = await mine.json();
    expect(view).toMatchObject({ ok: true, id: sent.id, carrier: 'vinaphone', channel: 'voice', status: 'queued', price: '0.022000' });
    expect(view.phone).toMatch(/^\+8491\*{4}\d{3}$/);
    expect(JSON.stringify(view)).not.toContain('777777');
    const theirs = await get(BASE, `/api/v1/otp/${sent.id}`, b.api_key);
    expect(theirs.status).toBe(404);
    expect((await theirs.json()).error).toBe('not_found');
    expect((await get(BASE, '/api/v1/otp/otp_doesnotexist', a.api_key)).status).toBe(404);
  });

  it('I7: an Idempotency-Key replay returns the first response byte for byte and creates nothing; another body is 409', async () => {
    const { api_key } = await signup(BASE);
    const body = { phone: freshPhone(), code: '246810' };
    const first = await post(BASE, '/api/v1/send-otp', api_key, body, { 'Idempotency-Key': 'login-42' });
    const firstText = await first.text();
    const head = await server.running.core.store.headPosition();
    const again = await post(BASE, '/api/v1/send-otp', api_key, body, { 'Idempotency-Key': 'login-42' });
    expect(again.status).toBe(200);
    expect(await again.text()).toBe(firstText);
    expect(await server.running.core.store.headPosition()).toBe(head);
    const conflict = await post(BASE, '/api/v1/send-otp', api_key, { ...body, code: '999999' }, { 'Idempotency-Key': 'login-42' });
    expect(conflict.status).toBe(409);
    expect((await conflict.json()).error).toBe('idempotency_conflict');
    // Another body under a used key is a conflict, also when that body would be refused on its own.
    for (const other of [{ ...body, phone: '12345' }, { phone: '0702000001', code: '246810', channel: 'voice' }]) {
      const answer = await post(BASE, '/api/v1/send-otp', api_key, other, { 'Idempotency-Key': 'login-42' });
      expect([answer.status, (await answer.json()).error]).toEqual([409, 'idempotency_conflict']);
    }
    const bal = await (await get(BASE, '/api/v1/balance', api_key)).json();
    expect(bal.test_credits).toBe(4);
  });

  it('I7: the request hash kept in the log is keyed: hashing guesses of the phone and code does not find it', async () => {
    const { api_key } = await signup(BASE);
    const body = { phone: freshPhone(), code: '305172' };
    const sent = await (await post(BASE, '/api/v1/send-otp', api_key, body, { 'Idempotency-Key': 'login-7781' })).json();
    const requested = await findEvent(sent.id, 'OtpRequested');
    const plain = requestHash(body, SEND_OTP_FIELDS);
    expect(requested.requestHash).toMatch(/^[0-9a-f]{64}$/);
    expect(requested.requestHash).not.toBe(plain);
    expect(requested.requestHash).toBe(requestHash(body, SEND_OTP_FIELDS, requestHashKey(server.running.core.config.phonePepper)));
  });

  it('I7: a send recorded with the plain hash (before it was keyed) still replays, and another body under its key is still 409', async () => {
    const { api_key } = await signup(BASE);
    const auth = await authOf(api_key);
    const body = { phone: freshPhone(), code: '112233' };
    // What the version before recorded: the same command with the unkeyed hash.
    const old = await server.running.app.get(CommandBus).execute(new SendOtp(auth, { ...body, channel: 'auto' }, 'before-upgrade', requestHash(body, SEND_OTP_FIELDS)));
    const again = await post(BASE, '/api/v1/send-otp', api_key, body, { 'Idempotency-Key': 'before-upgrade' });
    expect(again.status).toBe(200);
    expect((await again.json()).id).toBe(old.id);
    const other = await post(BASE, '/api/v1/send-otp', api_key, { ...body, code: '445566' }, { 'Idempotency-Key': 'before-upgrade' });
    expect([other.status, (await other.json()).error]).toEqual([409, 'idempotency_conflict']);
  });

  it('I7: a key used ten minutes ago is answered from the read model of send keys (the account state keeps 20 s of keys)', async () => {
    const { api_key } = await signup(BASE);
    const core = server.running.core;
    const body = { phone: freshPhone(), code: '246810' };
    // The first send as if made ten minutes ago: its key is past the state's 20 s, within the 48 h.
    const clock = core.clock;
    const setClock = (c: () => Date) => Object.defineProperty(core, 'clock', { value: c, configurable: true });
    setClock(() => new Date(Date.now() - 10 * 60_000));
    let firstText: string;
    try {
      firstText = await (await post(BASE, '/api/v1/send-otp', api_key, body, { 'Idempotency-Key': 'ten-minutes-ago' })).text();
    } finally {
      setClock(clock);
    }
    // Ten minutes on, the read models have long applied it.
    await core.caughtUp();
    const again = await post(BASE, '/api/v1/send-otp', api_key, body, { 'Idempotency-Key': 'ten-minutes-ago' });
    expect(again.status).toBe(200);
    expect(await again.text()).toBe(firstText);
    const other = await post(BASE, '/api/v1/send-otp', api_key, { ...body, code: '135791' }, { 'Idempotency-Key': 'ten-minutes-ago' });
    expect([other.status, (await other.json()).error]).toEqual([409, 'idempotency_conflict']);
    expect((await (await get(BASE, '/api/v1/balance', api_key)).json()).test_credits).toBe(4);
  });

  it('I7: the same body is the same JSON value: whitespace and field order do not make it another request', async () => {
    const { api_key } = await signup(BASE);
    const phone = freshPhone();
    const send = (raw: string) =>
      fetch(`${BASE}/api/v1/send-otp`, { method: 'POST', headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'application/json', 'Idempotency-Key': 'order-1' }, body: raw });
    const firstText = await (await send(`{"phone":"${phone}","code":"135790"}`)).text();
    for (const raw of [`{ "phone" : "${phone}",\n  "code": "135790" }`, `{"code":"135790","phone":"${phone}"}`]) {
      const again = await send(raw);
      expect(again.status).toBe(200);
      expect(await again.text()).toBe(firstText);
    }
    const other = await send(`{"code":"135791","phone":"${phone}"}`);
    expect(other.status).toBe(409);
    expect((await (await get(BASE, '/api/v1/balance', api_key)).json()).test_credits).toBe(4);
  });

  it('I8: one send per phone per 30 s, with retry_after and Retry-After', async () => {
    const { api_key } = await signup(BASE);
    const phone = freshPhone();
    expect((await post(BASE, '/api/v1/send-otp', api_key, { phone, code: '111111' })).status).toBe(200);
    const again = await post(BASE, '/api/v1/send-otp', api_key, { phone: phone.replace(/^0/, '+84'), code: '222222' });
    expect(again.status).toBe(429);
    const body = await again.json();
    expect(body).toMatchObject({ ok: false, error: 'rate_limited' });
    expect(body.retry_after).toBeGreaterThanOrEqual(29);
    expect(body.retry_after).toBeLessThanOrEqual(30);
    expect(again.headers.get('retry-after')).toBe(String(body.retry_after));
  });

  it('a refused send does not hold the phone: the user can be sent to once the account is funded', async () => {
    const { api_key } = await signup(BASE);
    for (let i = 0; i < 5; i++) await post(BASE, '/api/v1/send-otp', api_key, { phone: freshPhone(), code: '123456' });
    const phone = freshPhone();
    expect((await post(BASE, '/api/v1/send-otp', api_key, { phone, code: '123456' })).status).toBe(402);
    expect((await post(BASE, '/api/v1/send-otp', api_key, { phone, code: '123456' })).status).toBe(402);
  });
});

describe('error codes of API.md with their status', () => {
  let key: string;
  beforeAll(async () => {
    key = (await signup(BASE)).api_key;
  });

  const cases: [string, () => Promise<Response>, number, string][] = [
    ['body not JSON', () => post(BASE, '/api/v1/send-otp', key, '{"phone": '), 400, 'invalid_request'],
    ['wrong types', () => post(BASE, '/api/v1/send-otp', key, { phone: 912345678, code: 123456 }), 400, 'invalid_request'],
    ['unknown fields', () => post(BASE, '/api/v1/send-otp', key, { phone: '0912345678', code: '123456', extra: 1 }), 400, 'invalid_request'],
    ['too large', () => post(BASE, '/api/v1/send-otp', key, { phone: '0912345678', code: '123456', pad: 'x'.repeat(17 * 1024) }), 400, 'invalid_request'],
    ['code of 3 digits', () => post(BASE, '/api/v1/send-otp', key, { phone: '0912345678', code: '123' }), 400, 'invalid_request'],
    ['code of 11 digits', () => post(BASE, '/api/v1/send-otp', key, { phone: '0912345678', code: '12345678901' }), 400, 'invalid_request'],
    ['code with letters', () => post(BASE, '/api/v1/send-otp', key, { phone: '0912345678', code: '12ab56' }), 400, 'invalid_request'],
    ['bad channel', () => post(BASE, '/api/v1/send-otp', key, { phone: '0912345678', code: '123456', channel: 'fax' }), 400, 'invalid_request'],
    ['bad month', () => get(BASE, '/api/v1/stats?month=2026-13', key), 400, 'invalid_request'],
    ['missing key', () => post(BASE, '/api/v1/send-otp', undefined, { phone: '0912345678', code: '123456' }), 401, 'unauthorized'],
    ['unknown key', () => post(BASE, '/api/v1/send-otp', 'nxo_live_' + 'A'.repeat(43), { phone: '0912345678', code: '123456' }), 401, 'unauthorized'],
    ['not a bearer', () => get(BASE, '/api/v1/balance', undefined, { Authorization: 'Basic Zm9vOmJhcg==' }), 401, 'unauthorized'],
    ['landline', () => post(BASE, '/api/v1/send-otp', key, { phone: '02438123456', code: '123456' }), 422, 'invalid_phone'],
    ['foreign number', () => post(BASE, '/api/v1/send-otp', key, { phone: '+14155550100', code: '123456' }), 422, 'invalid_phone'],
    ['voice to Mobifone', () => post(BASE, '/api/v1/send-otp', key, { phone: '0901234567', code: '123456', channel: 'voice' }), 422, 'no_route'],
    ['Gmobile', () => post(BASE, '/api/v1/send-otp', key, { phone: '0991234567', code: '123456' }), 422, 'no_route'],
    ['Itelecom', () => post(BASE, '/api/v1/send-otp', key, { phone: '0871234567', code: '123456', channel: 'sms' }), 422, 'no_route'],
    ['Reddi', () => post(BASE, '/api/v1/send-otp', key, { phone: '0551234567', code: '123456' }), 422, 'no_route'],
    ['unknown route', () => get(BASE, '/api/v1/nothing-here', key), 404, 'not_found'],
    // Edges the table implies.
    ['form-encoded body (curl -d)', () => fetch(`${BASE}/api/v1/send-otp`, { method: 'POST', headers: { Authorization: `Bearer ${key}` }, body: new URLSearchParams({ phone: '0961234568', code: '1234' }) }), 400, 'invalid_request'],
    ['empty phone', () => post(BASE, '/api/v1/send-otp', key, { phone: '', code: '123456' }), 422, 'invalid_phone'],
    ['an id longer than any of ours', () => get(BASE, `/api/v1/otp/${'x'.repeat(150)}`, key), 404, 'not_found'],
    ['an id with characters ours never have', () => get(BASE, '/api/v1/otp/%F0%9F%9A%80', key), 404, 'not_found'],
    ['feedback for such an id', () => post(BASE, `/api/v1/otp/${'x'.repeat(150)}/feedback`, key, { verified: true }), 404, 'not_found'],
    ['a key id longer than any of ours', () => fetch(`${BASE}/api/v1/keys/${'y'.repeat(150)}`, { method: 'DELETE', headers: { Authorization: `Bearer ${key}` } }), 404, 'not_found'],
    ['a malformed URL', () => get(BASE, '/api/v1/otp/%zz', key), 400, 'invalid_request'],
    // This server has no NEXO_CHAINS: an address nobody watches would never be credited.
    ['a deposit address where no chain takes deposits', () => get(BASE, '/api/v1/deposit-address?chain=ethereum', key), 400, 'invalid_request'],
    ['a path segment past 1 KiB', () => get(BASE, `/api/v1/otp/${'x'.repeat(1100)}`, key), 400, 'invalid_request'],
    // Node's parser refuses these before any route: the API's shape all the same.
    ['request headers past the server limit', () => fetch(`${BASE}/api/v1/balance`, { headers: { Authorization: `Bearer ${key}`, 'X-Big': 'h'.repeat(20_000) } }), 431, 'invalid_request'],
    [
      'a webhook URL carrying a user name and password',
      () => fetch(`${BASE}/api/v1/webhook`, { method: 'PUT', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ url: 'https://u:p@example.test/hook' }) }),
      400,
      'invalid_request',
    ],
  ];

  it.each(cases.map(([name, call, status, code]) => [`${name} → ${status} ${code}`, call, status, code] as const))('%s', async (_name, call, status, code) => {
    const head = await server.running.core.store.headPosition();
    const res = await call();
    expect(res.status).toBe(status);
    const body = await res.json();
    expect(body).toMatchObject({ ok: false, error: code, message: expect.any(String) });
    // Every answer's headers, the HTTP parser's own refusals included; a 401 names the scheme it takes.
    expect([res.headers.get('x-content-type-options'), res.headers.get('cache-control')]).toEqual(['nosniff', 'no-store']);
    expect(res.headers.get('www-authenticate')).toBe(status === 401 ? 'Bearer' : null);
    expect(await server.running.core.store.headPosition()).toBe(head);
  });

  it('tells a key that cannot be one (truncated, mistyped) as an unknown key, not as a malformed header', async () => {
    for (const presented of ['nxo_live_wrong', `${key}!`, 'x'.repeat(201)]) {
      const res = await get(BASE, '/api/v1/balance', presented);
      expect({ status: res.status, body: await res.json() }).toEqual({ status: 401, body: { ok: false, error: 'unauthorized', message: 'unknown or revoked API key' } });
    }
    const res = await get(BASE, '/api/v1/balance', undefined, { Authorization: 'Bearer' });
    expect(await res.json()).toMatchObject({ error: 'unauthorized', message: 'missing or malformed Authorization: Bearer <api key>' });
  });

  it('takes a key after more than one space (RFC 9110 allows it) and a lower-case scheme', async () => {
    for (const header of [`Bearer  ${key}`, `bearer ${key}`]) expect((await get(BASE, '/api/v1/balance', undefined, { Authorization: header })).status).toBe(200);
  });
});

describe('what a free account cannot do (from a security review)', () => {
  it('learns nothing about a phone another customer just sent to, while it cannot pay: 402 before the per-phone 429', async () => {
    const phone = freshPhone();
    const payer = (await signup(BASE)).api_key;
    expect((await post(BASE, '/api/v1/send-otp', payer, { phone, code: '123456' })).status).toBe(200);
    const { api_key: prober } = await signup(BASE);
    for (let i = 0; i < 5; i++) expect((await post(BASE, '/api/v1/send-otp', prober, { phone: freshPhone(), code: '123456' })).status).toBe(200);
    const probe = await post(BASE, '/api/v1/send-otp', prober, { phone, code: '123456' });
    expect(probe.status).toBe(402);
    expect((await probe.json()).error).toBe('insufficient_balance');
    // A customer who can pay is told the phone's own limit, as API.md says.
    expect((await post(BASE, '/api/v1/send-otp', (await signup(BASE)).api_key, { phone, code: '123456' })).status).toBe(429);
  });

  it('cannot read a docs asset by a prototype name (it was a 500 and a stack in the log)', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) expect({ name, status: (await get(BASE, `/docs/${name}`)).status }).toEqual({ name, status: 404 });
  });

  it('behind one proxy (NEXO_TRUST_PROXY=true) cannot choose its signup bucket with X-Forwarded-For: the address the proxy appended counts', async () => {
    const proxied = await startServer({ NEXO_TRUST_PROXY: 'true', NEXO_SIGNUPS_PER_HOUR: '3', NEXO_WORKERS: 'off' });
    try {
      const signupFrom = (xff: string) => post(proxied.base, '/api/v1/signup', undefined, {}, { 'X-Forwarded-For': xff });
      const statuses: number[] = [];
      for (let i = 1; i <= 5; i++) statuses.push((await signupFrom(`10.0.0.${i}, 198.51.100.7`)).status);
      expect(statuses).toEqual([201, 201, 201, 429, 429]);
      expect((await signupFrom('198.51.100.8')).status).toBe(201);
    } finally {
      await proxied.stop();
    }
  });
});

describe("the router's own refusals", () => {
  it('count in nexo_http_request_duration_seconds like every other answer', async () => {
    const count = async () => {
      const line = (await (await fetch(`${BASE}/metrics`)).text()).split('\n').find((l) => l.startsWith('nexo_http_request_duration_seconds_count{method="GET",route="other",status="400"}'));
      return Number(line?.split(' ').pop() ?? 0);
    };
    const before = await count();
    expect((await fetch(`${BASE}/api/v1/otp/%E0%A4%A`)).status).toBe(400);
    expect((await fetch(`${BASE}/api/v1/otp/${'x'.repeat(1100)}`)).status).toBe(400);
    expect(await count()).toBe(before + 2);
  });
});

describe('hostile input', () => {
  const nasty = [
    '',
    ' ',
    '\u0000',
    '０９１２３４５６７８',
    '٠٩١٢٣٤٥٦٧٨',
    '"; DROP TABLE events; --',
    "' OR 1=1 --",
    '<script>alert(1)</script>',
    '${7*7}',
    '../../etc/passwd',
    '💥'.repeat(50),
    'x'.repeat(300),
    '\ud800',
    '0912345678\n0912345679',
  ];
  const values: unknown[] = [...nasty, null, true, 0, -1, 1e309, [], {}, ['0912345678'], { $gt: '' }];

  it('never answers 5xx and never appends, whatever lands in any field', async () => {
    const { api_key } = await signup(BASE);
    const head = await server.running.core.store.headPosition();
    const base = { phone: '0912345678', code: '123456', channel: 'sms', webhook_url: 'https://example.test/h' };
    for (const field of Object.keys(base)) {
      for (const v of values) {
        const res = await post(BASE, '/api/v1/send-otp', api_key, { ...base, [field]: v });
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        const body = await res.json();
        expect(body.ok).toBe(false);
      }
    }
    for (const v of nasty) {
      const res = await get(BASE, `/api/v1/otp/${encodeURIComponent(v.replace(/[\ud800-\udfff]/g, '\ufffd') || 'x')}`, api_key);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      const key = await post(BASE, '/api/v1/send-otp', api_key, base, { 'Idempotency-Key': v.slice(0, 300) || 'k' }).catch(() => undefined);
      if (key) expect(key.status).toBeLessThan(500);
    }
    const raw = ['[', 'null', '[]', '"str"', '{"phone":', '\u0000', '{"__proto__":{"x":1},"phone":"0912345678","code":"123456"}'];
    for (const body of raw) {
      const res = await post(BASE, '/api/v1/send-otp', api_key, body);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
    }
    // Valid JSON with a prototype key: refused, and the message names that case too (it read "body is not valid JSON").
    for (const body of ['{"__proto__":{"x":1},"phone":"0912345678","code":"123456"}', '{"constructor":{"prototype":{"x":1}},"phone":"0912345678","code":"123456"}']) {
      const res = await post(BASE, '/api/v1/send-otp', api_key, body);
      expect([res.status, (await res.json()).message]).toEqual([400, 'body is not valid JSON, or has a forbidden key (__proto__, constructor.prototype)']);
    }
    const wrongType = await fetch(`${BASE}/api/v1/send-otp`, { method: 'POST', headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'text/plain' }, body: 'phone=0912345678' });
    expect(wrongType.status).toBe(400);
    expect(await server.running.core.store.headPosition()).toBe(head);
  });
});

describe('operations endpoints', () => {
  it('serves health, OpenAPI and the docs UI', async () => {
    expect(await (await get(BASE, '/health/live')).json()).toEqual({ ok: true });
    const ready = await get(BASE, '/health/ready');
    expect(ready.status).toBe(200);
    const doc = await (await get(BASE, '/openapi.json')).json();
    expect(doc.paths['/api/v1/send-otp'].post).toBeDefined();
    const ui = await get(BASE, '/docs');
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('swagger');
    const init = await get(BASE, '/docs/init.js');
    expect([init.status, init.headers.get('content-type')]).toEqual([200, 'application/javascript; charset=utf-8']);
    expect(await init.text()).toContain("url: '/openapi.json'");
  });

  it('answers with nosniff, and with no-store wherever the route does not set its own caching (keys and webhook secrets go out in bodies)', async () => {
    const signupRes = await fetch(`${BASE}/api/v1/signup`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'cache check' }) });
    expect(signupRes.status).toBe(201);
    for (const res of [signupRes, await get(BASE, '/api/v1/stats/public'), await get(BASE, '/api/v1/balance'), await get(BASE, '/openapi.json')]) {
      expect([res.url, res.headers.get('x-content-type-options'), res.headers.get('cache-control')]).toEqual([res.url, 'nosniff', 'no-store']);
    }
    const asset = await get(BASE, '/docs/swagger-ui.css');
    expect([asset.headers.get('x-content-type-options'), asset.headers.get('cache-control')]).toEqual(['nosniff', 'public, max-age=86400']);
  });
});

describe('webhook URLs must be public addresses (the default: signup is open to anyone, so a URL is attacker input)', () => {
  let strict: TestServer;
  beforeAll(async () => {
    strict = await startServer({ NEXO_WEBHOOK_PRIVATE_ADDRESSES: 'deny', NEXO_WORKERS: 'off' });
  });
  afterAll(async () => strict.stop());

  const internal = ['http://169.254.169.254/latest/meta-data/', 'http://127.0.0.1:3000/metrics', 'http://[::1]/', 'http://localhost:8080/hook', 'https://10.0.0.7/h', 'http://2130706433/'];

  it('PUT /api/v1/webhook refuses internal addresses with 400 invalid_request, naming the field, and configures nothing', async () => {
    const { api_key } = await signup(strict.base);
    const head = await strict.running.core.store.headPosition();
    for (const url of internal) {
      const res = await fetch(`${strict.base}/api/v1/webhook`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ url }),
      });
      expect({ url, status: res.status, body: await res.json() }).toEqual({
        url,
        status: 400,
        body: { ok: false, error: 'invalid_request', message: expect.stringMatching(/^url: must be a public address/) },
      });
    }
    expect(await strict.running.core.store.headPosition()).toBe(head);
    const ok = await fetch(`${strict.base}/api/v1/webhook`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: 'https://hooks.example.com/nexo' }),
    });
    expect(ok.status).toBe(200);
  });

  it('the OpenAPI document tells customers so, on both fields', async () => {
    const doc = await (await get(strict.base, '/openapi.json')).json();
    const field = (path: string, method: string, name: string) => doc.paths[path][method].requestBody.content['application/json'].schema.properties[name].description;
    expect(field('/api/v1/webhook', 'put', 'url')).toMatch(/must reach a public address/);
    expect(field('/api/v1/send-otp', 'post', 'webhook_url')).toMatch(/must reach a public address/);
  });

  it('send-otp refuses an internal webhook_url before charging anything', async () => {
    const { api_key } = await signup(strict.base);
    const head = await strict.running.core.store.headPosition();
    for (const webhook_url of internal) {
      const res = await post(strict.base, '/api/v1/send-otp', api_key, { phone: freshPhone(), code: '123456', webhook_url });
      expect({ webhook_url, status: res.status, body: await res.json() }).toEqual({
        webhook_url,
        status: 400,
        body: { ok: false, error: 'invalid_request', message: expect.stringMatching(/^webhook_url: must be a public address/) },
      });
    }
    expect(await strict.running.core.store.headPosition()).toBe(head);
    expect((await (await get(strict.base, '/api/v1/balance', api_key)).json()).test_credits).toBe(5);
    const put = await fetch(`${strict.base}/api/v1/webhook`, { method: 'PUT', headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ url: 'https://hooks.example.com/nexo' }) });
    expect(put.status).toBe(200);
    const sent = await post(strict.base, '/api/v1/send-otp', api_key, { phone: freshPhone(), code: '123456', webhook_url: 'https://hooks.example.com/nexo?otp=1' });
    expect(sent.status).toBe(200);
  });
});
