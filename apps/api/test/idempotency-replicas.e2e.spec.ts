/**
 * Idempotency-Key on signup and on `POST /keys` across API replicas (the
 * distributed mode: EventStoreDB shared, each replica with its own file). A
 * retry that reaches another replica must get the first answer, not a second
 * account or key (I7); another body under the same key is a conflict there
 * too. On the in-memory EventStoreDB stand-in, with two replicas.
 */
import { randomUUID } from 'node:crypto';
import type { EventStore } from '#eventstore';
import { post, type TestServer } from './harness.js';
import { type Replicas, startReplicas } from './replicas.harness.js';

describe('Idempotency-Key across API replicas on one log', () => {
  let replicas: Replicas | undefined;
  let a: TestServer;
  let b: TestServer;
  let log: EventStore;

  beforeAll(async () => {
    replicas = await startReplicas();
    ({ a, b, log } = replicas);
  }, 60_000);

  afterAll(() => replicas?.stop());

  const signupOn = async (server: TestServer, key: string, name: string) => {
    const res = await post(server.base, '/api/v1/signup', undefined, { name }, { 'Idempotency-Key': key });
    return { status: res.status, body: (await res.json()) as { ok: boolean; account_id?: string; api_key?: string; error?: string } };
  };
  const accountsOpened = async () => {
    let n = 0;
    for await (const e of log.readAll()) if (e.type === 'AccountOpened') n++;
    return n;
  };

  it('a signup retried on another replica gets the first answer, and one account is opened', async () => {
    const key = randomUUID();
    const before = await accountsOpened();
    const first = await signupOn(a, key, 'replicated exchange');
    expect(first).toMatchObject({ status: 201, body: { ok: true } });
    const retry = await signupOn(b, key, 'replicated exchange');
    expect(retry).toEqual(first);
    expect(await accountsOpened()).toBe(before + 1);
  });

  it('the same key with another body is a conflict on the other replica too', async () => {
    const key = randomUUID();
    expect((await signupOn(a, key, 'first body')).status).toBe(201);
    const other = await signupOn(b, key, 'another body');
    expect(other).toMatchObject({ status: 409, body: { ok: false, error: 'idempotency_conflict' } });
  });

  it.each([
    ['sent to both replicas at once', () => [a, b]],
    ['sent twice at once to one replica', () => [a, a]],
  ])('the same signup %s opens one account, and both get its answer', async (_, servers) => {
    const key = randomUUID();
    const before = await accountsOpened();
    const [x, y] = await Promise.all(servers().map((server) => signupOn(server, key, 'racing exchange')));
    expect(x).toMatchObject({ status: 201, body: { ok: true } });
    expect(y).toEqual(x);
    expect(await accountsOpened()).toBe(before + 1);
  });

  it('an extra key retried on another replica is the same key', async () => {
    const { body: account } = await signupOn(a, randomUUID(), 'key holder');
    const key = randomUUID();
    const issue = async (server: TestServer) => {
      const res = await post(server.base, '/api/v1/keys', account.api_key, {}, { 'Idempotency-Key': key });
      return { status: res.status, body: (await res.json()) as { ok: boolean; key_id?: string; api_key?: string } };
    };
    const first = await issue(a);
    expect(first).toMatchObject({ status: 201, body: { ok: true } });
    // B learns of the account from the log: its key lookups follow its projections.
    expect(await issue(b)).toEqual(first);
  });
});
