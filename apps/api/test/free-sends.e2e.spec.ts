/**
 * Free sends per phone (NEXO_FREE_SENDS_PER_PHONE_PER_DAY): test credits pay
 * for at most that many sends to one phone per UTC day, every account
 * together. Signup is free and open, and a phone takes one send per 30 s from
 * everyone: without the cap, free accounts could keep a victim's phone busy
 * (paying customers' codes to it refused with 429) and text it all day for
 * nothing. Past the cap the balance still pays; an account with only test
 * credits gets 402 saying why, and nothing is appended.
 */
import { accountDecider, accountStream } from '#domain';
import { testDeposit } from '../../../libs/eventstore/src/testing/seed-accounts.js';
import { freshPhone, get, post, signup, startServer, type TestServer } from './harness.js';

describe('free sends per phone and day, all accounts together', () => {
  let server: TestServer;

  beforeAll(async () => {
    // No per-phone interval here, so consecutive sends to one phone meet the cap and nothing else.
    server = await startServer({ NEXO_FREE_SENDS_PER_PHONE_PER_DAY: '2', NEXO_PHONE_INTERVAL_SECONDS: '0', NEXO_WORKERS: 'off' });
  });
  afterAll(async () => server?.stop());

  const send = async (key: string, phone: string) => {
    const res = await post(server.base, '/api/v1/send-otp', key, { phone, code: '482913' });
    return { status: res.status, body: (await res.json()) as { ok: boolean; funded_by?: string; error?: string; message?: string } };
  };
  const testCredits = async (key: string) => ((await (await get(server.base, '/api/v1/balance', key)).json()) as { test_credits: number }).test_credits;

  it('lets test credits pay for two sends to a phone, then only a balance; other phones are untouched', async () => {
    const phone = freshPhone('098');
    const [a, b, c, paying] = await Promise.all(['free a', 'free b', 'free c', 'paying'].map((n) => signup(server.base, n)));
    await server.running.core.runner.handle(accountStream(paying.account_id), accountDecider, testDeposit(1_000_000n, new Date().toISOString()));

    expect(await send(a.api_key, phone)).toMatchObject({ status: 200, body: { ok: true, funded_by: 'test_credit' } });
    expect(await send(b.api_key, phone)).toMatchObject({ status: 200, body: { ok: true, funded_by: 'test_credit' } });

    const refused = await send(c.api_key, phone);
    expect(refused).toMatchObject({ status: 402, body: { ok: false, error: 'insufficient_balance' } });
    expect(refused.body.message).toMatch(/free sends to one phone are limited per day/);
    expect(await testCredits(c.api_key)).toBe(5);

    // Another phone: the account's test credits pay as before.
    expect(await send(c.api_key, freshPhone('098'))).toMatchObject({ status: 200, body: { funded_by: 'test_credit' } });
    expect(await testCredits(c.api_key)).toBe(4);

    // An account with a balance still reaches the phone, paying from the balance, its test credits kept.
    expect(await send(paying.api_key, phone)).toMatchObject({ status: 200, body: { ok: true, funded_by: 'balance' } });
    expect(await testCredits(paying.api_key)).toBe(5);
  });
});
