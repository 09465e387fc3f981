/**
 * Requests at the edges of API.md, over real HTTP: bodies that are not JSON, inputs whose
 * refusal must name what is wrong, content negotiation of the statement, and URL shapes.
 */
import { request as httpRequest } from 'node:http';
import { post, signup, startServer, type TestServer } from './harness.js';

let server: TestServer;
let BASE: string;
let key: string;

beforeAll(async () => {
  server = await startServer({ NEXO_WORKERS: 'off' });
  BASE = server.base;
  key = (await signup(BASE)).api_key;
});
afterAll(async () => server.stop());

async function answer(res: Response | Promise<Response>): Promise<{ status: number; body: unknown }> {
  const r = await res;
  return { status: r.status, body: await r.json() };
}
const refused = (message: string | RegExp) => ({ status: 400, body: { ok: false, error: 'invalid_request', message: typeof message === 'string' ? message : expect.stringMatching(message) } });

/** A raw request, so the exact bytes (and the answer's headers) are what the test says. */
function raw(method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: Record<string, unknown>; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${BASE}${path}`, { method, headers: { ...headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('a body that is not JSON is 400 invalid_request saying so', () => {
  const json = () => ({ 'content-type': 'application/json', authorization: `Bearer ${key}` });

  it('truncated JSON: "body is not valid JSON"', async () => {
    const res = await raw('POST', '/api/v1/send-otp', json(), '{"phone":');
    expect({ status: res.status, body: res.body }).toEqual(refused('body is not valid JSON, or has a forbidden key (__proto__, constructor.prototype)'));
    // Fastify closes the connection after any body it could not parse: the client may still be sending.
    expect(res.headers.connection).toBe('close');
  });

  it('an empty body declared as JSON is no body: refused by the routes that need one, saying what they need; taken where the body is optional', async () => {
    // Client libraries that set `Content-Type: application/json` on every request send it so.
    const send = await raw('POST', '/api/v1/send-otp', json(), '');
    expect({ status: send.status, body: send.body }).toEqual(refused('body: must be JSON { "phone": string, "code": "4-10 digits", "channel"?, "webhook_url"? }'));
    const webhook = await raw('PUT', '/api/v1/webhook', json(), '');
    expect({ status: webhook.status, body: webhook.body }).toEqual({ status: 400, body: expect.objectContaining({ ok: false, error: 'invalid_request' }) });
    const signup = await raw('POST', '/api/v1/signup', { 'content-type': 'application/json' }, '');
    expect({ status: signup.status, body: signup.body }).toEqual({ status: 201, body: expect.objectContaining({ ok: true, test_credits: 5 }) });
    const newKey = await raw('POST', '/api/v1/keys', json(), '');
    expect({ status: newKey.status, body: newKey.body }).toEqual({ status: 201, body: expect.objectContaining({ ok: true }) });
  });

  it('not JSON on every JSON route, nothing created', async () => {
    const head = await server.running.core.store.headPosition();
    for (const path of ['/api/v1/signup', '/api/v1/keys', '/api/v1/otp/zz_unknown/feedback']) {
      expect(await answer(post(BASE, path, key, '{nope}'))).toEqual(refused('body is not valid JSON, or has a forbidden key (__proto__, constructor.prototype)'));
    }
    expect(await server.running.core.store.headPosition()).toBe(head);
  });
});

describe('a refused input names what is wrong, as `name: reason`', () => {
  it('Idempotency-Key empty or over 255 characters names the header', async () => {
    for (const value of ['', 'k'.repeat(256)]) {
      for (const path of ['/api/v1/send-otp', '/api/v1/keys']) {
        const body = path === '/api/v1/keys' ? {} : { phone: '0912000301', code: '1234' };
        expect(await answer(post(BASE, path, key, body, { 'Idempotency-Key': value }))).toEqual(refused('Idempotency-Key: must be 1-255 characters'));
      }
    }
  });

  it('a body that is not a JSON object says the shape it must have', async () => {
    const feedback = '/api/v1/otp/zz_unknown/feedback';
    // No body at all (no Content-Type either), and JSON that is not an object.
    expect(await answer(fetch(`${BASE}${feedback}`, { method: 'POST', headers: { Authorization: `Bearer ${key}` } }))).toEqual(refused('body: must be JSON { "verified": true }'));
    for (const body of ['[]', 'null', '"verified"', 'true']) expect(await answer(post(BASE, feedback, key, body))).toEqual(refused('body: must be JSON { "verified": true }'));
    expect(await answer(post(BASE, '/api/v1/send-otp', key, '[]'))).toEqual(refused(/^body: must be JSON \{ "phone": string, "code"/));
    expect(await answer(fetch(`${BASE}/api/v1/webhook`, { method: 'PUT', headers: { Authorization: `Bearer ${key}` } }))).toEqual(refused(/^body: must be JSON \{ "url"/));
  });

  it('fields: missing, unknown and wrong ones each named', async () => {
    expect(await answer(post(BASE, '/api/v1/send-otp', key, { code: '12', extra: 1 }))).toEqual(refused('phone: required; code: must be 4-10 digits; extra: unknown field'));
  });

  it('query parameters: unknown (bracketed names included), given twice, or malformed', async () => {
    const query = (q: string) => answer(fetch(`${BASE}/api/v1/stats${q}`, { headers: { Authorization: `Bearer ${key}` } }));
    expect(await query('?month[a]=x')).toEqual(refused('month[a]: unknown query parameter'));
    expect(await query('?month%5B%5D=2026-01')).toEqual(refused('month[]: unknown query parameter'));
    expect(await query('?month=2026-01&month=2026-02')).toEqual(refused('month: given more than once'));
    expect(await query('?month=2026-13')).toEqual(refused('month: must be YYYY-MM'));
  });
});

describe('GET /api/v1/ledger negotiates JSON or CSV on Accept', () => {
  const typeFor = async (accept?: string) => {
    const res = await fetch(`${BASE}/api/v1/ledger`, { headers: { Authorization: `Bearer ${key}`, ...(accept === undefined ? {} : { Accept: accept }) } });
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('vary')).toMatch(/accept/i);
    const type = res.headers.get('content-type')!.split(';')[0];
    if (type === 'text/csv') expect(text.split('\r\n')[0]).toBe('at,type,amount,balance_after,ref');
    else expect(JSON.parse(text)).toMatchObject({ ok: true, lines: [] });
    return type;
  };

  it('q-values decide, not the mere mention of text/csv', async () => {
    expect(await typeFor('text/csv;q=0.9, application/json')).toBe('application/json');
    expect(await typeFor('application/json;q=0.5, text/csv')).toBe('text/csv');
    expect(await typeFor('text/csv')).toBe('text/csv');
    expect(await typeFor('text/csv;q=0, */*')).toBe('application/json');
  });

  it('*/*, no Accept header and an Accept naming neither are JSON', async () => {
    // fetch sends `Accept: */*` when none is given; a raw request sends none at all.
    expect(await typeFor('*/*')).toBe('application/json');
    expect(await typeFor('application/xml')).toBe('application/json');
    const bare = await raw('GET', '/api/v1/ledger', { authorization: `Bearer ${key}` });
    expect({ status: bare.status, type: String(bare.headers['content-type']).split(';')[0] }).toEqual({ status: 200, type: 'application/json' });
  });
});

describe('a trailing slash reaches the same route', () => {
  it('GET, POST and routes with an id answer as without the slash', async () => {
    const balance = await answer(fetch(`${BASE}/api/v1/balance/`, { headers: { Authorization: `Bearer ${key}` } }));
    expect(balance).toEqual({ status: 200, body: expect.objectContaining({ ok: true, currency: 'USD' }) });
    const sent = await post(BASE, '/api/v1/send-otp/', key, { phone: '0912000401', code: '1234' });
    expect(sent.status).toBe(200);
    const { id } = await sent.json();
    expect(await answer(fetch(`${BASE}/api/v1/otp/${id}/`, { headers: { Authorization: `Bearer ${key}` } }))).toMatchObject({ status: 200, body: { ok: true, id } });
    expect(await answer(fetch(`${BASE}/health/live/`))).toEqual({ status: 200, body: { ok: true } });
    // Still only one slash's worth: a path nothing serves stays 404 in the API's shape.
    expect(await answer(fetch(`${BASE}/api/v1/balance//`, { headers: { Authorization: `Bearer ${key}` } }))).toMatchObject({ status: 404, body: { ok: false, error: 'not_found' } });
  });
});
