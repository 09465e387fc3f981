/**
 * The per-phone 429 across API replicas (the distributed mode: workers
 * elsewhere, EventStoreDB shared). Replica B never saw the send replica A
 * accepted, but the dispatcher that submitted it took the phone's window in
 * the log, and B reads it: 429 with the time left, instead of a charged send
 * the dispatcher would hold for 30 s. Here the test appends the window as the
 * dispatcher does (no worker runs), on the in-memory EventStoreDB stand-in.
 */
import { phoneWindowDecider, phoneWindowHolder, phoneWindowStream } from '#domain';
import { CommandRunner, type EventStore } from '#eventstore';
import { phoneHash } from '#security';
import { signup, type TestServer } from './harness.js';
import { type Replicas, startReplicas } from './replicas.harness.js';

describe('the per-phone limit across API replicas on one log', () => {
  let replicas: Replicas | undefined;
  let a: TestServer;
  let b: TestServer;
  let log: EventStore;
  let pepper: Buffer;

  beforeAll(async () => {
    replicas = await startReplicas();
    ({ a, b, log, pepper } = replicas);
  }, 60_000);

  afterAll(() => replicas?.stop());

  const send = async (server: TestServer, key: string, phone: string) => {
    const res = await fetch(`${server.base}/api/v1/send-otp`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
      body: JSON.stringify({ phone, code: '482913', channel: 'sms' }),
    });
    return { status: res.status, body: (await res.json()) as { ok: boolean; id?: string; error?: string; retry_after?: number } };
  };
  /** What a distributed dispatcher appends when it submits the OTP (or gives the window back). */
  const window = (phone: string, command: 'TakePhoneWindow' | 'ReleasePhoneWindow', otpId: string) =>
    new CommandRunner(log).handle(
      phoneWindowStream(phoneHash(pepper, phone)),
      phoneWindowDecider,
      command === 'TakePhoneWindow'
        ? { type: command, holder: phoneWindowHolder(otpId, 1), at: new Date().toISOString(), windowMs: 31_000 }
        : { type: command, holder: phoneWindowHolder(otpId, 1), at: new Date().toISOString() },
    );

  it('answers 429 on another replica while a dispatcher holds the phone, with the time left; sends once the window was given back', async () => {
    const { api_key: key, account_id: accountId } = await signup(a.base);
    const phone = '+84981234567';
    const charges = async () => {
      let n = 0;
      for await (const e of log.readStream(`account-${accountId}`)) if (e.type === 'Charged') n++;
      return n;
    };
    const first = await send(a, key, phone);
    expect(first.status).toBe(200);
    await window(phone, 'TakePhoneWindow', first.body.id!);

    const other = await send(b, key, phone);
    expect(other).toMatchObject({ status: 429, body: { ok: false, error: 'rate_limited' } });
    // The interval (30 s) plus the second allowed for clocks that differ between processes.
    expect(other.body.retry_after).toBeGreaterThanOrEqual(29);
    expect(other.body.retry_after).toBeLessThanOrEqual(31);
    // Refused before anything was charged: a second try on B is refused the same way.
    expect((await send(b, key, phone)).status).toBe(429);
    expect((await send(a, key, phone)).status).toBe(429);
    expect(await charges()).toBe(1);

    // The dispatcher gave the window back (the submission never left): B accepts the phone again.
    await window(phone, 'ReleasePhoneWindow', first.body.id!);
    expect((await send(b, key, phone)).status).toBe(200);
  });

  it('sends to a phone with no window in the log on any replica', async () => {
    const { api_key: key } = await signup(b.base);
    expect((await send(b, key, '+84911234568')).status).toBe(200);
    expect((await send(a, key, '+84901234569')).status).toBe(200);
  });
});
