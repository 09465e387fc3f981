/**
 * I7 for POST /signup and POST /keys when the first request never answered: a
 * crash between the claim of its Idempotency-Key and its stored answer, or an
 * error after its append (read models not caught up within 5 s). The retry
 * with the same key and body gets the answer the first would have given (the
 * same account, the same API key) and creates nothing more; another body is
 * still 409. Real HTTP on ephemeral ports, a temp data dir, a restart on it,
 * and a real process SIGKILLed with signups in flight.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteEventStore } from '#eventstore';
import { ensureBuilt } from '../../../libs/eventstore/src/testing/ensure-built.js';
import { freePort, ready, startApiProcess, stopApiProcess } from './api-process.js';
import { SIGNUP_FIELDS, requestHash } from '../src/http/schemas.js';
import { planSignup, Signup, SignupHandler, type SignupPlan } from '../src/accounts/accounts.handlers.js';
import { get, post, startServer, type TestServer } from './harness.js';

interface Answer {
  status: number;
  text: string;
  body: any;
}

async function answer(res: Promise<Response>): Promise<Answer> {
  const r = await res;
  const text = await r.text();
  return { status: r.status, text, body: JSON.parse(text) };
}

/** Event types on the account's stream, read from the log itself. */
async function streamTypes(server: TestServer, accountId: string): Promise<string[]> {
  const types: string[] = [];
  for await (const e of server.running.core.store.readStream(`account-${accountId}`)) types.push(e.type);
  return types;
}

async function accountsOpened(server: TestServer): Promise<string[]> {
  const ids: string[] = [];
  for await (const e of server.running.core.store.readAll()) if (e.type === 'AccountOpened') ids.push((e.data as { accountId: string }).accountId);
  return ids;
}

const signupWith = (server: TestServer, key: string, body: unknown) => answer(post(server.base, '/api/v1/signup', undefined, body, { 'Idempotency-Key': key }));
const never = () => new Promise<never>(() => undefined);

describe('I7: a signup cut short by a crash is finished by its retry', () => {
  /** What the first request's work got done before its process died. */
  const cases: [string, (first: TestServer, plan: SignupPlan) => Promise<unknown>][] = [
    ['after the claim, before the append', async () => undefined],
    ['after the append, before the answer was stored', (first, plan) => new SignupHandler(first.running.core).execute(new Signup(plan))],
  ];

  it.each(cases)('%s: the retry after a restart gets 201 with the planned account and key; one AccountOpened; replays are byte for byte', async (_when, work) => {
    const first = await startServer({ NEXO_WORKERS: 'off' });
    const body = { name: 'crashed exchange' };
    let plan!: SignupPlan;
    let done!: Promise<unknown>;
    // The claim exactly as the controller writes it, then a process that dies inside the work:
    // its request never answers, and nothing of this process survives but its files.
    void first.running.core.httpIdempotency.run('signup:127.0.0.1', 'crash-1', requestHash(body, SIGNUP_FIELDS), {
      plan: () => (plan = planSignup(first.running.core, body.name)),
      perform: (p) => (done = work(first, p)).then(never),
    });
    await done;
    await first.running.close();

    const restarted = await startServer({ NEXO_WORKERS: 'off', NEXO_DATA_DIR: first.dataDir });
    try {
      const retry = await signupWith(restarted, 'crash-1', body);
      expect(retry.status).toBe(201);
      // What the first request would have answered, byte for byte.
      expect(retry.text).toBe(JSON.stringify({ ok: true, account_id: plan.accountId, api_key: plan.key.key, test_credits: plan.testCredits }));
      expect(await accountsOpened(restarted)).toEqual([plan.accountId]);
      expect(await streamTypes(restarted, plan.accountId)).toEqual(['AccountOpened', 'ApiKeyIssued']);
      expect((await answer(get(restarted.base, '/api/v1/balance', plan.key.key))).body).toMatchObject({ ok: true, test_credits: plan.testCredits });

      const head = await restarted.running.core.store.headPosition();
      expect((await signupWith(restarted, 'crash-1', body)).text).toBe(retry.text);
      expect(await restarted.running.core.store.headPosition()).toBe(head);
      const other = await signupWith(restarted, 'crash-1', { name: 'another' });
      expect([other.status, other.body.error]).toEqual([409, 'idempotency_conflict']);
    } finally {
      await restarted.stop();
    }
  }, 60_000);
});

describe('I7: a request that failed after its append (read models not caught up in time) is finished by its retry', () => {
  let server: TestServer;
  beforeAll(async () => void (server = await startServer({ NEXO_WORKERS: 'off' })));
  afterAll(async () => server.stop());

  /**
   * The next wait for the read models fails as the projector's 5 s timeout does. Mocked: stalling
   * the projector thread for real would cost the test 5 s and a hook into the thread.
   */
  function timeOutNextCatchUp(): void {
    const { core } = server.running;
    core.caughtUp = () => {
      delete (core as { caughtUp?: unknown }).caughtUp;
      return Promise.reject(new Error('projections did not reach position 0 within 5000 ms'));
    };
  }

  it('signup: the first is 500, its retry 201 with the same account (no second account, no second 5 test credits)', async () => {
    const before = await accountsOpened(server);
    timeOutNextCatchUp();
    const failed = await signupWith(server, 'slow-1', { name: 'slow' });
    expect([failed.status, failed.body.error]).toEqual([500, 'internal']);
    const opened = (await accountsOpened(server)).slice(before.length);
    expect(opened).toHaveLength(1);

    const retry = await signupWith(server, 'slow-1', { name: 'slow' });
    expect(retry.status).toBe(201);
    expect(retry.body).toEqual({ ok: true, account_id: opened[0], api_key: expect.stringMatching(/^nxo_live_/), test_credits: 5 });
    expect((await accountsOpened(server)).slice(before.length)).toEqual(opened);
    expect(await streamTypes(server, opened[0]!)).toEqual(['AccountOpened', 'ApiKeyIssued']);
    expect((await answer(get(server.base, '/api/v1/balance', retry.body.api_key))).status).toBe(200);
    expect((await signupWith(server, 'slow-1', { name: 'slow' })).text).toBe(retry.text);
    expect((await signupWith(server, 'slow-1', { name: 'other' })).status).toBe(409);
  });

  it('POST /keys: the first is 500 after its key was issued, its retry 201 with that key; no second key', async () => {
    const signup = await signupWith(server, 'keys-owner', {});
    const { account_id, api_key } = signup.body;
    timeOutNextCatchUp();
    const failed = await answer(post(server.base, '/api/v1/keys', api_key, {}, { 'Idempotency-Key': 'slow-key' }));
    expect([failed.status, failed.body.error]).toEqual([500, 'internal']);
    expect(await streamTypes(server, account_id)).toEqual(['AccountOpened', 'ApiKeyIssued', 'ApiKeyIssued']);

    const retry = await answer(post(server.base, '/api/v1/keys', api_key, {}, { 'Idempotency-Key': 'slow-key' }));
    expect(retry.status).toBe(201);
    expect(await streamTypes(server, account_id)).toEqual(['AccountOpened', 'ApiKeyIssued', 'ApiKeyIssued']);
    const listed = (await answer(get(server.base, '/api/v1/keys', api_key))).body.keys.map((k: { key_id: string }) => k.key_id);
    expect(listed).toContain(retry.body.key_id);
    expect((await answer(get(server.base, '/api/v1/balance', retry.body.api_key))).status).toBe(200);
    expect((await answer(post(server.base, '/api/v1/keys', api_key, {}, { 'Idempotency-Key': 'slow-key' }))).text).toBe(retry.text);
  });

  it('a signup answered normally: its replay is byte for byte and creates nothing', async () => {
    const first = await signupWith(server, 'plain-1', { name: 'plain' });
    expect(first.status).toBe(201);
    const head = await server.running.core.store.headPosition();
    expect((await signupWith(server, 'plain-1', { name: 'plain' })).text).toBe(first.text);
    expect(await server.running.core.store.headPosition()).toBe(head);
    expect((await signupWith(server, 'plain-1', { name: 'plain2' })).status).toBe(409);
  });
});

describe('I7: SIGKILL of a real process with signups in flight (the audit\'s run, smaller)', () => {
  beforeAll(() => ensureBuilt(), 180_000);

  // With a claim left unanswered refused as before (409), each run tried had 1 to 4 retries refused.
  it('after a restart every retry with its key and body gets 201; answered ones byte for byte; one account per key, each with its key', async () => {
    const CLIENTS = 8;
    const KILL_AFTER = 40;
    const dir = mkdtempSync(join(tmpdir(), 'nexo-idem-kill-'));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const attempt = (i: number) =>
      answer(post(base, '/api/v1/signup', undefined, { name: `exchange ${i}` }, { 'Idempotency-Key': `kill-${i}` })).catch(() => undefined);
    let child = startApiProcess(dir, port);
    try {
      await ready(base);
      // Clients that each keep one signup in flight: at the kill, CLIENTS of them are unanswered, at any stage.
      const first: (Answer | undefined)[] = [];
      let answered = 0;
      let killed = false;
      let kill!: () => void;
      const killNow = new Promise<void>((r) => (kill = r));
      const clients = Array.from({ length: CLIENTS }, async () => {
        while (!killed) {
          const i = first.length;
          first.push(undefined);
          first[i] = await attempt(i);
          if (first[i]?.status === 201 && ++answered === KILL_AFTER) kill();
        }
      });
      await killNow;
      killed = true;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      await Promise.all(clients);
      const SIGNUPS = first.length;
      expect(first.filter((a) => a !== undefined && a.status !== 201)).toEqual([]);
      expect(first.filter((a) => a === undefined).length).toBeGreaterThan(0);

      child = startApiProcess(dir, port);
      await ready(base);
      const retries = await Promise.all(Array.from({ length: SIGNUPS }, (_, i) => attempt(i)));
      expect(retries.map((a) => a?.status)).toEqual(Array(SIGNUPS).fill(201));
      const accounts = retries.map((a) => a!.body.account_id as string);
      expect(new Set(accounts).size).toBe(SIGNUPS);
      for (const [i, a] of first.entries()) {
        if (a) expect(retries[i]!.text).toBe(a.text);
        // The key of a signup the client first heard of now opens its account.
        else expect((await answer(get(base, '/api/v1/balance', retries[i]!.body.api_key))).body).toMatchObject({ ok: true, test_credits: 5 });
      }
      await stopApiProcess(child);

      const store = SqliteEventStore.open(join(dir, 'nexo.db'), { readonly: true });
      const opened: string[] = [];
      const keyed = new Set<string>();
      for await (const e of store.readAll()) {
        if (e.type === 'AccountOpened') opened.push((e.data as { accountId: string }).accountId);
        if (e.type === 'ApiKeyIssued') keyed.add(e.streamId);
      }
      await store.close();
      expect(opened.sort()).toEqual([...accounts].sort());
      expect(opened.filter((id) => !keyed.has(`account-${id}`))).toEqual([]);
    } finally {
      await stopApiProcess(child);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
