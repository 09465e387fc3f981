/**
 * The dispatcher walking the routing table against real upstreams: three
 * scripted JSON aggregators on 127.0.0.1 (node:http, ephemeral ports) and the
 * in-process simulator as the last resort, in the embedded pipeline (SQLite
 * log, in-process bus, every worker). Each aggregator answers per OTP what
 * the test scripts for it (by the `reference` our adapter sends), so the
 * cases do not depend on the order in which requests arrive.
 *
 * Routes:  vinaphone sms  agg1 → agg2 → backup
 *          viettel   voice vox, sms backup      (auto falls back voice → SMS)
 *          mobifone  sms   agg2                 (no voice, as the product says)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RecordedEvent } from '#eventstore';
import { until } from '#testing';
import { nextPhone, startPipeline, type OtpFacts, type Pipeline } from './pipeline.harness.js';

const SECRET = 'aggregator-shared-secret-0123456789';
const WINDOW_MS = 1_000;
const FAST = { timeScale: 0.001, failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0 };
const CODE = '482913';

type Action = { status: number; body?: string; headers?: Record<string, string> } | { hang: true } | { reset: true };

interface Seen {
  otpId: string;
  attempt: number;
  body: Record<string, unknown>;
  at: number;
}

/** An aggregator answering each OTP's requests from its script (then 202), recording what it was asked. */
async function scriptedAggregator(name: string) {
  const seen: Seen[] = [];
  const scripts = new Map<string, Action[]>();
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { reference: string };
      const [otpId, attempt] = body.reference.split(':') as [string, string];
      seen.push({ otpId, attempt: Number(attempt), body, at: Date.now() });
      const action = scripts.get(otpId)?.shift() ?? { status: 202, body: JSON.stringify({ message_id: `${name}-${++n}`, status: 'accepted' }) };
      if ('hang' in action) return;
      if ('reset' in action) return void req.socket.destroy();
      res.writeHead(action.status, { 'content-type': 'application/json', ...action.headers }).end(action.body ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    script: (otpId: string, ...actions: Action[]) => void scripts.set(otpId, actions),
    of: (otpId: string) => seen.filter((s) => s.otpId === otpId),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

type Aggregator = Awaited<ReturnType<typeof scriptedAggregator>>;
type Step = [type: string, provider: string | undefined, attempt: number | undefined];

const steps = (f: OtpFacts): Step[] =>
  f.otpEvents
    .filter((e) => e.type === 'Routed' || e.type === 'RouteFailed')
    .map((e) => {
      const d = e.data as { provider: string; attempt: number };
      return [e.type, d.provider, d.attempt];
    });
const dataOf = <T>(f: OtpFacts, type: string, provider?: string): T =>
  f.otpEvents.find((e) => e.type === type && (provider === undefined || (e.data as { provider: string }).provider === provider))!.data as T;
const atOf = (e: RecordedEvent | { at: string }): number => Date.parse(('data' in e ? (e.data as { at: string }) : e).at);

let seq = 0;
const otpId = (what: string) => `otp_fo_${process.pid}_${seq++}_${what}`;

describe('failover through the routing table, against loopback upstreams', () => {
  let pipeline: Pipeline;
  let vox: Aggregator;
  let agg1: Aggregator;
  let agg2: Aggregator;
  let account: string;

  /** Every OTP in the log once `done` holds for the one asked about. */
  const facts = (id: string, done: (f: OtpFacts) => boolean, timeoutMs = 8_000) =>
    until(
      `otp ${id}`,
      async () => {
        const f = (await pipeline.ledger()).get(id);
        return f && done(f) ? f : undefined;
      },
      { timeoutMs, everyMs: 25 },
    );
  const settled = (id: string) => facts(id, (f) => f.settlements.length > 0);
  const routed = (id: string) => facts(id, (f) => f.otpEvents.some((e) => e.type === 'Routed'));
  /** agg1 answers both its tries of OTP `id` with `tries`; the OTP must fail over to agg2, and only once the phone's window has passed. */
  const expectFailoverAfterWindow = async (id: string, ...tries: [Action, Action]) => {
    agg1.script(id, ...tries);
    await pipeline.send(account, nextPhone(['091']), { otpId: id });
    const f = await routed(id);
    expect(steps(f)).toEqual([
      ['RouteFailed', 'agg1', 1],
      ['Routed', 'agg2', 2],
    ]);
    expect(agg1.of(id)).toHaveLength(2);
    const firstSubmit = agg1.of(id)[0]!.at;
    expect(agg2.of(id)[0]!.at - firstSubmit).toBeGreaterThanOrEqual(WINDOW_MS - 50);
  };

  beforeAll(async () => {
    [vox, agg1, agg2] = await Promise.all([scriptedAggregator('vox'), scriptedAggregator('agg1'), scriptedAggregator('agg2')]);
    pipeline = await startPipeline({
      carriers: {
        providers: [
          { kind: 'http', name: 'vox', baseUrl: vox.url, secret: SECRET, timeoutMs: 1_000, maxRetries: 0 },
          { kind: 'http', name: 'agg1', baseUrl: agg1.url, secret: SECRET, timeoutMs: 200, maxRetries: 1 },
          { kind: 'http', name: 'agg2', baseUrl: agg2.url, secret: SECRET, timeoutMs: 1_000, maxRetries: 0 },
          { kind: 'simulator', name: 'backup', simulator: FAST },
        ],
        routes: {
          vinaphone: { sms: ['agg1', 'agg2', 'backup'] },
          viettel: { voice: ['vox'], sms: ['backup'] },
          mobifone: { sms: ['agg2'] },
        },
      },
      workers: { dispatcher: { phoneWindowMs: WINDOW_MS, parkedPollMs: 50 } },
    });
    account = await pipeline.openAccount({ deposit: 10_000_000n });
  });

  afterAll(async () => {
    await pipeline?.stop();
    await Promise.all([vox, agg1, agg2].map((a) => a?.close()));
  });

  it('walks the plan in order (throttled, then unavailable, then the next) with one attempt number each, and settles through the last', async () => {
    const id = otpId('order');
    agg1.script(id, { status: 429, body: '{"error":"throttled"}', headers: { 'retry-after': '5' } });
    agg2.script(id, { status: 503, body: '{"error":"unavailable"}' });
    const sentAt = Date.now();
    await pipeline.send(account, nextPhone(['091']), { otpId: id, code: CODE });
    const f = await settled(id);
    expect(steps(f)).toEqual([
      ['RouteFailed', 'agg1', 1],
      ['RouteFailed', 'agg2', 2],
      ['Routed', 'backup', 3],
    ]);
    expect(dataOf(f, 'RouteFailed', 'agg1')).toMatchObject({ error: 'throttled: http_429', retryable: true });
    expect(dataOf(f, 'RouteFailed', 'agg2')).toMatchObject({ error: 'unavailable: http_503', retryable: true });
    expect(f.otpEvents.some((e) => e.type === 'RouteFailed' && (e.data as { final?: boolean }).final)).toBe(false);
    expect(dataOf(f, 'Routed')).toMatchObject({ channel: 'sms', carrier: 'vinaphone' });
    expect(f.settlements.map((s) => s.type)).toEqual(['Delivered']);
    // 429 is not retried at the throttled upstream; each provider got its own attempt's reference.
    expect(agg1.of(id).map((s) => s.attempt)).toEqual([1]);
    expect(agg2.of(id).map((s) => s.attempt)).toEqual([2]);
    // Neither failure is ambiguous: the failover did not wait for the phone's window.
    expect(atOf(dataOf<{ at: string }>(f, 'Routed')) - sentAt).toBeLessThan(WINDOW_MS);
  });

  it('a 4xx at the first provider ends the plan: refunded as rejected, and no other provider is asked', async () => {
    const id = otpId('4xx');
    agg1.script(id, { status: 400, body: '{"error":"invalid_request"}' });
    await pipeline.send(account, nextPhone(['091']), { otpId: id });
    const f = await settled(id);
    expect(steps(f)).toEqual([['RouteFailed', 'agg1', 1]]);
    expect(dataOf(f, 'RouteFailed')).toMatchObject({ error: 'invalid_request: http_400', retryable: false, final: true });
    expect(f.settlements.map((s) => [s.type, (s.data as { reason?: string }).reason])).toEqual([['Refunded', 'rejected']]);
    expect(agg1.of(id)).toHaveLength(1);
    expect(agg2.of(id)).toHaveLength(0);
  });

  it('auto falls back from voice to SMS after a retryable voice failure, and the SMS is rendered as text', async () => {
    const id = otpId('auto');
    vox.script(id, { status: 503, body: '{"error":"unavailable"}' });
    const sent = await pipeline.send(account, nextPhone(['098']), { otpId: id, code: CODE });
    expect(sent).toMatchObject({ carrier: 'viettel', channel: 'voice' });
    const f = await settled(id);
    expect(steps(f)).toEqual([
      ['RouteFailed', 'vox', 1],
      ['Routed', 'backup', 2],
    ]);
    expect(dataOf(f, 'RouteFailed')).toMatchObject({ retryable: true });
    expect(dataOf(f, 'RouteFailed')).not.toHaveProperty('final');
    expect(dataOf(f, 'Routed')).toMatchObject({ channel: 'sms', carrier: 'viettel' });
    expect(f.settlements.map((s) => s.type)).toEqual(['Delivered']);
    const [call] = vox.of(id);
    expect(call!.body).toMatchObject({ channel: 'voice', carrier: 'viettel', digits: CODE, speech: expect.any(String) });
    expect(call!.body).not.toHaveProperty('text');
  });

  it('a named channel never falls back: voice asked, voice down → refunded, no SMS sent', async () => {
    const id = otpId('named');
    vox.script(id, { status: 503, body: '{"error":"unavailable"}' });
    await pipeline.send(account, nextPhone(['098']), { otpId: id, channel: 'voice' });
    const f = await settled(id);
    expect(steps(f)).toEqual([['RouteFailed', 'vox', 1]]);
    expect(dataOf(f, 'RouteFailed')).toMatchObject({ retryable: true, final: true });
    expect(f.settlements.map((s) => [s.type, (s.data as { reason?: string }).reason])).toEqual([['Refunded', 'undelivered']]);
  });

  it('Mobifone on auto goes by SMS only: with its SMS route down it is refunded, never called', async () => {
    const id = otpId('mobi');
    agg2.script(id, { status: 503, body: '{"error":"unavailable"}' });
    const sent = await pipeline.send(account, nextPhone(['090']), { otpId: id });
    expect(sent).toMatchObject({ carrier: 'mobifone', channel: 'sms' });
    const f = await settled(id);
    expect(steps(f)).toEqual([['RouteFailed', 'agg2', 1]]);
    expect(dataOf(f, 'RouteFailed')).toMatchObject({ final: true });
    expect(f.settlements.map((s) => s.type)).toEqual(['Refunded']);
    expect(vox.of(id)).toHaveLength(0);
    expect(agg2.of(id).map((s) => s.body.channel)).toEqual(['sms']);
  });

  it('I8 across providers: a second OTP to the same phone waits for the window the first opened, even when it goes out elsewhere; other phones do not wait', async () => {
    const phone = nextPhone(['091']);
    const first = otpId('i8a');
    const second = otpId('i8b');
    const other = otpId('i8c');
    await pipeline.send(account, phone, { otpId: first });
    const f1 = await routed(first);
    expect(steps(f1)).toEqual([['Routed', 'agg1', 1]]);
    // agg1 is down for the second one (both tries): it goes out through agg2.
    agg1.script(second, { status: 503 }, { status: 503 });
    const sentAt = Date.now();
    await pipeline.send(account, phone, { otpId: second });
    await pipeline.send(account, nextPhone(['091']), { otpId: other });
    const f3 = await routed(other);
    expect(atOf(dataOf<{ at: string }>(f3, 'Routed')) - sentAt).toBeLessThan(WINDOW_MS);
    const f2 = await routed(second);
    expect(steps(f2)).toEqual([
      ['RouteFailed', 'agg1', 1],
      ['Routed', 'agg2', 2],
    ]);
    const firstSubmit = agg1.of(first)[0]!.at;
    expect(agg1.of(second)[0]!.at - firstSubmit).toBeGreaterThanOrEqual(WINDOW_MS - 50);
    expect(agg2.of(second)[0]!.at - firstSubmit).toBeGreaterThanOrEqual(WINDOW_MS - 50);
    expect(pipeline.workers.waiting().parkedDispatches).toBe(0);
  });

  /*
   * Found by this test, fixed 2026-11-26 (it was a bug) (I8): the first try timed out (agg1 may well be sending this OTP), the
   * adapter's retry got a 503, and submit() reports only that last error,
   * `unavailable`. The dispatcher treats only `timeout`/`connection_lost` as
   * ambiguous, so it releases the phone's window and agg2 is asked at once:
   * two submissions to one phone well inside the window. Expected: the
   * failover waits for the window, as it does after a plain timeout
   * (upstream-down.e2e.spec.ts, "an upstream that hangs").
   */
  it('I8: a submit that timed out and then got a 5xx keeps the phone window; the failover waits for it', async () => {
    await expectFailoverAfterWindow(otpId('timeout_then_5xx'), { hang: true }, { status: 503, body: '{"error":"unavailable"}' });
  });

  /*
   * Found by this test, fixed 2026-11-26 (it was a bug) (I8): agg1 read the whole request and then the connection dropped
   * without an answer, twice. That is as ambiguous as a timeout (the
   * upstream may have taken the message; SMPP calls the same case
   * `connection_lost`), but the adapter reports `network: ECONNRESET` (README's
   * table files resets under `network`), the dispatcher releases the window
   * (PhoneLimiter.release is documented for submissions that "provably never
   * reached an upstream (e.g. connection refused)"), and agg2 sends at once.
   */
  it('I8: a connection reset after the upstream read the request keeps the phone window; the failover waits for it', async () => {
    await expectFailoverAfterWindow(otpId('reset'), { reset: true }, { reset: true });
  });

  /*
   * Found by this test, fixed 2026-11-26 (it was a bug): after an ambiguous timeout the OTP waits (parked) for the phone's
   * window, then fails over. If meanwhile the first upstream's receipt comes
   * in (it did take the message, which is why the window was kept) and
   * settles the OTP as delivered, the dispatcher still submits it to the next
   * provider: submitUntilDone() only checks `routed`, `expired` and
   * `finalFailure` on the OTP's stream, never its receipts, so the user gets
   * the code a second time. (With an `undelivered` receipt instead, the OTP is
   * refunded and then delivered by the failover for free.)
   */
  it('an OTP whose ambiguous first submission is confirmed delivered while it waits for its window is not sent again', async () => {
    const id = otpId('late_receipt');
    agg1.script(id, { hang: true }, { hang: true });
    await pipeline.send(account, nextPhone(['091']), { otpId: id });
    await facts(id, (f) => f.otpEvents.some((e) => e.type === 'RouteFailed'));
    await until('the dispatch parked', () => (pipeline.workers.waiting().parkedDispatches === 1 ? true : undefined), { timeoutMs: 3_000, everyMs: 10 });
    // agg1's signed callback, as the receipts endpoint publishes it: our reference names the OTP.
    await pipeline.publishReceipt({ provider: 'agg1', providerMessageId: `agg1-late-${id}`, status: 'delivered', raw: 'stat:DELIVRD', at: new Date().toISOString(), otpId: id });
    const f = await settled(id);
    expect(f.settlements.map((s) => s.type)).toEqual(['Delivered']);
    await until(
      'the parked dispatch handled',
      () => (pipeline.workers.waiting().parkedDispatches === 0 ? true : undefined),
      { timeoutMs: WINDOW_MS + 3_000, everyMs: 20 },
    );
    const after = (await pipeline.ledger()).get(id)!;
    expect(steps(after)).toEqual([['RouteFailed', 'agg1', 1]]);
    expect(agg2.of(id)).toHaveLength(0);
  });
});
