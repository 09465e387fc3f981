/**
 * The served surface against its documents: the OpenAPI document lists every
 * route the app serves with its methods (and nothing it does not serve), and
 * every documented operation answers errors in API.md's shape and status.
 * The route table is Fastify's own, as printed by the running app.
 */
import type { z } from 'zod';
import { accountDecider, accountStream } from '#domain';
import { testDeposit } from '../../../libs/eventstore/src/testing/seed-accounts.js';
import * as R from '../src/http/responses.js';
import { freshPhone, get, post, signup, startServer, type TestServer } from './harness.js';

let server: TestServer;
let BASE: string;

beforeAll(async () => {
  // A chain that takes deposits (no listener runs with the workers off; the RPC is never called).
  server = await startServer({ NEXO_WORKERS: 'off', NEXO_CHAINS: JSON.stringify([{ slug: 'ethereum', rpcUrls: ['http://127.0.0.1:9'] }]) });
  BASE = server.base;
});
afterAll(async () => server.stop());

type Operation = {
  security?: unknown[];
  parameters?: { name: string; in: string; schema?: { pattern?: string } }[];
  responses?: Record<string, { headers?: Record<string, unknown> }>;
};

/** `METHOD /path/{param}` for every route in Fastify's table, HEAD (implied by GET) left out. */
function servedRoutes(): Set<string> {
  const tree = server.running.app.getHttpAdapter().getInstance().printRoutes({ commonPrefix: false });
  const stack: string[] = [];
  const out = new Set<string>();
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)[├└]── (\S+)(?: \(([^)]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1].length / 4;
    stack.length = depth;
    stack.push(m[2]);
    const path = stack.join('').replace(/:(\w+)/g, '{$1}');
    for (const method of m[3]?.split(', ') ?? []) if (method !== 'HEAD') out.add(`${method} ${path}`);
  }
  return out;
}

/**
 * Served on purpose outside the OpenAPI document: the document itself, the
 * pages and assets of /docs and /dashboard (HTML, not API), and the carriers'
 * receipt callback (API.md: "Upstream (carrier side, not for customers)").
 */
const UNDOCUMENTED = ['GET /openapi.json', 'GET /docs', 'GET /docs/{asset}', 'GET /dashboard', 'GET /dashboard/qr.svg', 'GET /dashboard/{asset}', 'POST /api/v1/carriers/{provider}/receipts'];

async function documented(): Promise<Map<string, Operation>> {
  const doc = await (await get(BASE, '/openapi.json')).json();
  const ops = new Map<string, Operation>();
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Operation>>)) {
    for (const [method, op] of Object.entries(item)) ops.set(`${method.toUpperCase()} ${path}`, op);
  }
  return ops;
}

/** A concrete URL for a documented path: path parameters filled with ids nobody owns. */
const concrete = (path: string) => path.replace(/\{[^}]+\}/g, 'zz_unknown');

function call(route: string, init: { key?: string; headers?: Record<string, string>; query?: string } = {}): Promise<Response> {
  const [method, path] = route.split(' ');
  const url = `${BASE}${concrete(path)}${init.query ?? ''}`;
  const headers = { ...(init.key ? { Authorization: `Bearer ${init.key}` } : {}), ...init.headers };
  if (method === 'GET' || method === 'DELETE') return fetch(url, { method, headers });
  return fetch(url, { method, headers: { 'Content-Type': 'application/json', ...headers }, body: '{}' });
}

async function expectError(res: Response, status: number, error: string, what = ''): Promise<void> {
  const text = await res.text();
  expect({ what, status: res.status, type: res.headers.get('content-type') }).toEqual({ what, status, type: expect.stringMatching(/^application\/json/) });
  const body = JSON.parse(text);
  expect(body).toMatchObject({ ok: false, error, message: expect.any(String) });
  expectShape(R.ErrorResponse, body, what);
}

/** The answer has exactly its documented shape (`src/http/responses.ts`, what /openapi.json shows). */
function expectShape(schema: z.ZodType, body: unknown, what: string): void {
  const r = schema.safeParse(body);
  expect({ what, issues: r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) }).toEqual({ what, issues: [] });
}

describe('OpenAPI document against the route table', () => {
  it('documents every served route with its methods, and serves every documented one', async () => {
    const served = servedRoutes();
    expect(served.size).toBeGreaterThan(10);
    for (const r of UNDOCUMENTED) expect(served).toContain(r);
    const api = [...served].filter((r) => !UNDOCUMENTED.includes(r)).sort();
    expect([...(await documented()).keys()].sort()).toEqual(api);
  });

  it('marks exactly the routes that need a key as bearer-secured', async () => {
    for (const [route, op] of await documented()) {
      const res = await call(route);
      const secured = (op.security ?? []).length > 0;
      if (secured) await expectError(res, 401, 'unauthorized', route);
      else expect({ route, status: res.status }).not.toEqual({ route, status: 401 });
    }
  });
});

describe("every documented operation's errors have API.md's shape and status", () => {
  let key: string;
  let revokedKey: string;
  beforeAll(async () => {
    key = (await signup(BASE)).api_key;
    const extra = await (await post(BASE, '/api/v1/keys', key, {})).json();
    await fetch(`${BASE}/api/v1/keys/${extra.key_id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${key}` } });
    revokedKey = extra.api_key;
  });

  it('a revoked, unknown or malformed key is 401 unauthorized on every secured route', async () => {
    for (const [route, op] of await documented()) {
      if (!(op.security ?? []).length) continue;
      await expectError(await call(route, { key: revokedKey }), 401, 'unauthorized', route);
      await expectError(await call(route, { key: `nxo_live_${'Z'.repeat(43)}` }), 401, 'unauthorized');
      // The scheme name is case-insensitive (RFC 9110): `bearer` authenticates like `Bearer`.
      expect((await call(route, { headers: { Authorization: `bearer ${key}` } })).status).not.toBe(401);
    }
  });

  it('an unknown query parameter or a bad month or limit is 400 invalid_request on every GET that takes query parameters', async () => {
    let checked = 0;
    for (const [route, op] of await documented()) {
      if (!route.startsWith('GET /api/') || !(op.security ?? []).length) continue;
      const names = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      // Query parameters are validated (unknown ones refused) where the document declares some.
      if (route.includes('{') || names.length === 0) continue;
      const base = names.includes('chain') ? '?chain=ethereum&' : '?';
      await expectError(await call(route, { key, query: `${base}bogus=1` }), 400, 'invalid_request', route);
      if (names.includes('month')) {
        // The document's pattern refuses what the server refuses, and takes what it takes.
        const pattern = new RegExp(op.parameters!.find((p) => p.name === 'month')!.schema!.pattern!);
        for (const m of ['2026-00', '2026-13', '2026-1', '26-01', 'x']) {
          await expectError(await call(route, { key, query: `?month=${m}` }), 400, 'invalid_request');
          expect({ route, m, documented: pattern.test(m) }).toEqual({ route, m, documented: false });
        }
        for (const m of ['2026-01', '2026-12']) {
          expect((await call(route, { key, query: `?month=${m}` })).status).toBe(200);
          expect(pattern.test(m)).toBe(true);
        }
      }
      if (names.includes('limit')) for (const l of ['0', '-1', '1.5', 'many', '100000', '1e1', '0x10', '%205', '+5']) await expectError(await call(route, { key, query: `?limit=${l}` }), 400, 'invalid_request');
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(5);
  });

  it('429 and 503 answers carry the Retry-After header the document declares, every secured operation lists 429, and every API operation with errors lists 500 and 503 internal', async () => {
    const ops = await documented();
    for (const [route, op] of ops) {
      const codes = Object.keys(op.responses ?? {}).filter((c) => c >= '400');
      if (route.includes(' /api/') && codes.length > 0) expect({ route, internal: codes.includes('500') && codes.includes('503') }).toEqual({ route, internal: true });
      // (A probe's 503 is readiness, not a retry: /health/ready declares no Retry-After.)
      for (const c of ['429', '503'].filter((x) => codes.includes(x) && (x === '429' || route.includes(' /api/')))) expect({ route, c, headers: Object.keys(op.responses![c].headers ?? {}) }).toEqual({ route, c, headers: ['Retry-After'] });
      // Every request with a key takes a token of its rate, whatever the route.
      if ((op.security ?? []).length > 0) expect({ route, keyLimited: codes.includes('429') }).toEqual({ route, keyLimited: true });
    }
    expect(Object.keys(ops.get('POST /api/v1/send-otp')!.responses!)).toContain('429');
    // The per-phone limit (1 send per 30 s): the second send to one number is a real 429.
    const phone = freshPhone();
    expect((await post(BASE, '/api/v1/send-otp', key, { phone, code: '1234' })).status).toBe(200);
    const limited = await post(BASE, '/api/v1/send-otp', key, { phone, code: '1234' });
    const retry = limited.headers.get('retry-after');
    const body = await limited.json();
    expect({ status: limited.status, retry: Number(retry) > 0, body }).toEqual({ status: 429, retry: true, body: expect.objectContaining({ error: 'rate_limited', retry_after: Number(retry) }) });
    expectShape(R.ErrorResponse, body, 'rate_limited');
  });

  it('an id unknown to the account is 404 not_found on every route with one', async () => {
    let checked = 0;
    for (const route of (await documented()).keys()) {
      if (!/\{(id|key_id)\}/.test(route)) continue;
      const [method, path] = route.split(' ');
      // Feedback validates its body first: send a valid one, so the id is what is refused.
      const res = method === 'POST' ? await post(BASE, concrete(path), key, { verified: true }) : await call(route, { key });
      await expectError(res, 404, 'not_found', route);
      checked++;
    }
    expect(checked).toBe(3);
  });

  it('a path nothing serves is 404 not_found in the error shape', async () => {
    await expectError(await get(BASE, '/api/v2/balance', key), 404, 'not_found');
    await expectError(await get(BASE, '/api/v1/nothing', key), 404, 'not_found');
  });

  it('a method the path does not serve is 405 invalid_request with an Allow header naming the methods it does', async () => {
    const sendOtp = await get(BASE, '/api/v1/send-otp', key);
    expect(sendOtp.headers.get('allow')).toBe('POST');
    await expectError(sendOtp, 405, 'invalid_request');
    const balance = await fetch(`${BASE}/api/v1/balance`, { method: 'DELETE', headers: { Authorization: `Bearer ${key}` } });
    expect(balance.headers.get('allow')).toBe('GET, HEAD');
    await expectError(balance, 405, 'invalid_request');
    // Before any key is checked, as a 404 is: the methods a path takes are in /openapi.json for anyone.
    const keys = await fetch(`${BASE}/api/v1/keys`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect({ allow: keys.headers.get('allow'), body: await keys.json() }).toEqual({
      allow: 'GET, HEAD, POST',
      body: { ok: false, error: 'invalid_request', message: 'PUT is not allowed on this path; it takes GET, HEAD, POST' },
    });
    // Ids, a query string and a trailing slash reach the router as they do for the right method.
    const otp = await fetch(`${BASE}/api/v1/otp/zz_unknown/?x=1`, { method: 'DELETE', headers: { Authorization: `Bearer ${key}` } });
    expect(otp.headers.get('allow')).toBe('GET, HEAD');
    await expectError(otp, 405, 'invalid_request');
  });

  it("every served path answers each method it does not take with 405 and Allow from Fastify's route table", async () => {
    const byPath = new Map<string, string[]>();
    for (const route of servedRoutes()) {
      const [method, path] = route.split(' ');
      byPath.set(path, [...(byPath.get(path) ?? []), method]);
    }
    for (const [path, methods] of byPath) {
      const allow = [...methods, ...(methods.includes('GET') ? ['HEAD'] : [])].sort().join(', ');
      for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((m) => !methods.includes(m))) {
        const res = await call(`${method} ${path}`, { key });
        expect({ route: `${method} ${path}`, allow: res.headers.get('allow') }).toEqual({ route: `${method} ${path}`, allow });
        await expectError(res, 405, 'invalid_request', `${method} ${path}`);
      }
    }
  });

  it('Idempotency-Key is 1-255 characters: 255 is taken, 256 and empty are 400 invalid_request', async () => {
    const ok = await post(BASE, '/api/v1/send-otp', key, { phone: '0912000255', code: '1234' }, { 'Idempotency-Key': 'k'.repeat(255) });
    expect(ok.status).toBe(200);
    await expectError(await post(BASE, '/api/v1/send-otp', key, { phone: '0912000256', code: '1234' }, { 'Idempotency-Key': 'k'.repeat(256) }), 400, 'invalid_request');
    await expectError(await post(BASE, '/api/v1/send-otp', key, { phone: '0912000257', code: '1234' }, { 'Idempotency-Key': '' }), 400, 'invalid_request');
    await expectError(await post(BASE, '/api/v1/keys', key, {}, { 'Idempotency-Key': 'k'.repeat(256) }), 400, 'invalid_request');
    await expectError(await post(BASE, '/api/v1/signup', undefined, {}, { 'Idempotency-Key': 'k'.repeat(256) }), 400, 'invalid_request');
  });

  it('a body over 16 KiB is 400 invalid_request on every JSON POST and PUT, with nothing appended', async () => {
    const head = await server.running.core.store.headPosition();
    const big = JSON.stringify({ name: 'x'.repeat(17 * 1024) });
    for (const [path, method, auth] of [['/api/v1/signup', 'POST', false], ['/api/v1/keys', 'POST', true], ['/api/v1/webhook', 'PUT', true], ['/api/v1/template', 'PUT', true], ['/api/v1/otp/zz_unknown/feedback', 'POST', true]] as const) {
      const res = await fetch(`${BASE}${path}`, { method, headers: { 'Content-Type': 'application/json', ...(auth ? { Authorization: `Bearer ${key}` } : {}) }, body: big });
      await expectError(res, 400, 'invalid_request');
    }
    expect(await server.running.core.store.headPosition()).toBe(head);
  });

  it('POST /keys as API.md shows it, with no body at all, issues a key', async () => {
    const res = await fetch(`${BASE}/api/v1/keys`, { method: 'POST', headers: { Authorization: `Bearer ${key}` } });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ ok: true, key_id: expect.any(String), api_key: expect.any(String) });
  });
});

describe('every answer has the shape the OpenAPI document gives it', () => {
  it("a customer's whole session, answer by answer", async () => {
    const json = async (res: Response | Promise<Response>, schema: z.ZodType, what: string) => {
      const r = await res;
      expect({ what, status: r.status }).toEqual({ what, status: expect.any(Number) });
      const body = await r.json();
      expectShape(schema, body, what);
      return body;
    };
    const auth = (key: string) => ({ Authorization: `Bearer ${key}` });
    const { api_key: key, account_id } = await json(post(BASE, '/api/v1/signup', undefined, {}), R.SignupResponse, 'signup');
    // A deposit, so the statement and the deposits list have lines to check (a made-up USDT transfer on chain 1).
    await server.running.core.runner.handle(accountStream(account_id), accountDecider, testDeposit(1_000_000n, new Date().toISOString()));
    const extra = await json(post(BASE, '/api/v1/keys', key, {}), R.KeyIssuedResponse, 'POST /keys');
    await json(get(BASE, '/api/v1/keys', key), R.KeysResponse, 'GET /keys');
    await json(fetch(`${BASE}/api/v1/keys/${extra.key_id}`, { method: 'DELETE', headers: auth(key) }), R.KeyRevokedResponse, 'DELETE /keys');
    await json(fetch(`${BASE}/api/v1/webhook`, { method: 'PUT', headers: { ...auth(key), 'Content-Type': 'application/json' }, body: JSON.stringify({ url: 'https://example.test/h' }) }), R.WebhookResponse, 'PUT /webhook');
    await json(get(BASE, '/api/v1/template', key), R.TemplateResponse, 'GET /template');
    const template = { sms: 'ACME: ma xac thuc {code}', voice: null };
    await json(fetch(`${BASE}/api/v1/template`, { method: 'PUT', headers: { ...auth(key), 'Content-Type': 'application/json' }, body: JSON.stringify(template) }), R.TemplateResponse, 'PUT /template');
    const sent = await json(post(BASE, '/api/v1/send-otp', key, { phone: freshPhone(), code: '123456' }), R.SendOtpResponse, 'send-otp');
    await json(get(BASE, `/api/v1/otp/${sent.id}`, key), R.OtpResponse, 'GET /otp/:id');
    await json(post(BASE, `/api/v1/otp/${sent.id}/feedback`, key, { verified: true }), R.FeedbackResponse, 'feedback');
    await json(get(BASE, `/api/v1/otp/${sent.id}`, key), R.OtpResponse, 'GET /otp/:id delivered');
    await json(get(BASE, '/api/v1/otp?limit=5', key), R.OtpListResponse, 'GET /otp');
    await json(get(BASE, '/api/v1/balance', key), R.BalanceResponse, 'balance');
    await json(get(BASE, '/api/v1/stats', key), R.StatsResponse, 'stats');
    await json(get(BASE, '/api/v1/stats/public'), R.StatsResponse, 'stats/public');
    await json(get(BASE, '/api/v1/stats?month=2020-01', key), R.StatsResponse, 'stats of an empty month');
    expect((await json(get(BASE, '/api/v1/ledger', key), R.LedgerResponse, 'ledger')).lines.length).toBeGreaterThan(0);
    expect((await json(get(BASE, '/api/v1/deposits', key), R.DepositsResponse, 'deposits')).deposits.length).toBe(1);
    await json(get(BASE, '/api/v1/deposit-address?chain=ethereum', key), R.DepositAddressResponse, 'deposit-address');
    // The document names the chains this instance takes deposits on, and the API refuses the others.
    const doc = await (await get(BASE, '/openapi.json')).json();
    expect(doc.paths['/api/v1/deposit-address'].get.parameters.find((p: { name: string }) => p.name === 'chain').schema.enum).toEqual(['ethereum']);
    await expectError(await get(BASE, '/api/v1/deposit-address?chain=bsc', key), 400, 'invalid_request', 'an unconfigured chain');
    await json(get(BASE, '/health/live'), R.LiveResponse, 'live');
    await json(get(BASE, '/health/ready'), R.ReadyResponse, 'ready');
  });
});
