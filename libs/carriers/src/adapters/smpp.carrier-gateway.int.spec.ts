/**
 * The SMPP adapter against the simulator's SMPP face (an smpp@0.5 server)
 * over real sockets on 127.0.0.1: bind, window, receipts, throttling,
 * dropped links, enquire_link. Timings are scaled down, not mocked.
 */
import { until } from '#testing';
import type { Receipt } from '../carrier-gateway.port.js';
import type { SmppCarrierGateway } from './smpp.carrier-gateway.js';
import type { SmppCarrierGatewayOptions, SmppLinkState } from './smpp.options.js';
import { SmppSimulator, type SmppSimulatorOptions } from './simulator/smpp.simulator.js';
import { sms, smsIndex, startSmppGateway } from '../../test/smpp-gateway.fixtures.js';

const QUIET = { failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0, timeScale: 0.005 };

/**
 * A clock for the simulator's token bucket that moves a second forward only
 * after the bucket has refused someone, so throttling happens however slow
 * the machine is, and every refill follows a throttle.
 */
function throttlingClock(throttledSoFar: () => number) {
  let t = 0;
  let seen = 0;
  const timer = setInterval(() => {
    const n = throttledSoFar();
    if (n > seen) {
      seen = n;
      t += 1_000;
    }
  }, 20);
  return { now: () => t, stop: () => clearInterval(timer) };
}

describe('smpp adapter ↔ simulator SMPP face', () => {
  let sim: SmppSimulator;
  let gw: SmppCarrierGateway;
  let receipts: Receipt[];
  let states: { state: SmppLinkState; reconnectInMs?: number }[];
  let clock: ReturnType<typeof throttlingClock> | undefined;

  async function setup(simOpts: SmppSimulatorOptions = {}, gwOpts: Partial<SmppCarrierGatewayOptions> = {}) {
    sim = await SmppSimulator.start({ config: QUIET, recordSubmissions: 1_000, ...simOpts });
    receipts = [];
    states = [];
    gw = startSmppGateway(sim.port, {
      sink: (r) => void receipts.push(r),
      reconnect: { baseMs: 40, maxMs: 320 },
      throttle: { baseMs: 40, maxMs: 200 },
      onStateChange: (state, d) => states.push({ state, ...d }),
      ...gwOpts,
    });
    await gw.whenBound(5_000);
  }

  afterEach(async () => {
    clock?.stop();
    clock = undefined;
    await gw?.close();
    await sim?.close();
  });

  it('binds as a transceiver, submits, and matches deliver_sm receipts to their OTP', async () => {
    await setup();
    const results = await Promise.all([1, 2, 3].map((i) => gw.submit(sms(i))));
    await until('3 receipts', () => receipts.length === 3, { timeoutMs: 8_000, everyMs: 10 });
    expect(sim.stats()).toMatchObject({ binds: 1, accepted: 3 });
    for (const [k, i] of [1, 2, 3].entries()) {
      const r = receipts.find((x) => x.otpId === `otp${i}`);
      expect(r).toMatchObject({ provider: 'smsc', providerMessageId: results[k]!.providerMessageId, status: 'delivered', attempt: 1 });
      // The simulator's DLR carries `text:` with the start of the SMS; it must not reach the event log (I9).
      expect(r!.raw).toMatch(/stat:DELIVRD/);
      expect(r!.raw).not.toContain(String(100000 + i));
    }
    await until('3 receipts acked', () => sim.stats().receiptsAcked === 3, { timeoutMs: 8_000, everyMs: 10 });
    expect(sim.submissions()[0]).toMatchObject({ destination: '84912300001', text: 'Ma xac thuc 100001', dataCoding: 0 });
  });

  it('sends Vietnamese with diacritics as UCS-2 and plain text as GSM-7, both arriving intact', async () => {
    await setup();
    await gw.submit({ ...sms(1), text: 'Mã xác thực của bạn là 100001' });
    await gw.submit({ ...sms(2), text: 'Code_100002 @ $5' });
    expect(sim.submissions().map((s) => [s.text, s.dataCoding])).toEqual([
      ['Mã xác thực của bạn là 100001', 0x08],
      ['Code_100002 @ $5', 0x00],
    ]);
  });

  it('matches receipts whose id the SMSC quotes in decimal though submit_sm_resp gave hex', async () => {
    await setup({ receiptIdFormat: 'decimal', config: { ...QUIET, failureRate: 1 } });
    const { providerMessageId } = await gw.submit(sms(7));
    await until('the receipt', () => receipts.length === 1, { timeoutMs: 8_000, everyMs: 10 });
    expect(receipts[0]).toMatchObject({ providerMessageId, otpId: 'otp7', status: 'undelivered' });
    expect(receipts[0]!.raw).toContain(`id:${BigInt(`0x${providerMessageId}`)}`);
  });

  it('keeps at most `window` submit_sm unanswered', async () => {
    await setup({ submitResponseDelayMs: 30, config: { ...QUIET, timeScale: 0.05 } }, { window: 4 });
    const all = await Promise.all(Array.from({ length: 20 }, (_, i) => gw.submit(sms(i))));
    expect(new Set(all.map((r) => r.providerMessageId)).size).toBe(20);
    expect(sim.stats().maxOutstanding).toBe(4);
  });

  it('slows down on ESME_RTHROTTLED without losing messages or reordering any phone’s messages', async () => {
    clock = throttlingClock(() => sim.stats().throttled);
    await setup({ config: { ...QUIET, maxSubmitsPerSecond: 10 }, now: clock.now }, { window: 8 });
    const phones = Array.from({ length: 8 }, (_, p) => `+8498700000${p}`);
    const n = 48;
    const all = await Promise.all(Array.from({ length: n }, (_, i) => gw.submit(sms(i, phones[i % phones.length]))));
    const stats = sim.stats();
    expect(stats.throttled).toBeGreaterThanOrEqual(4); // 48 through a bucket of 10 that refills only after a refusal
    expect(stats.accepted).toBe(n);
    expect(new Set(all.map((r) => r.providerMessageId)).size).toBe(n);
    const accepted = sim.submissions().map((s) => ({ dest: s.destination, i: smsIndex(s.text) }));
    for (const dest of new Set(accepted.map((a) => a.dest))) {
      const order = accepted.filter((a) => a.dest === dest).map((a) => a.i);
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
    await until(`${n} receipts`, () => receipts.length === n, { timeoutMs: 8_000, everyMs: 10 });
    expect(new Set(receipts.map((r) => r.otpId)).size).toBe(n);
  });

  it('with window 1 keeps strict global order through throttling', async () => {
    clock = throttlingClock(() => sim.stats().throttled);
    await setup({ config: { ...QUIET, maxSubmitsPerSecond: 10 }, now: clock.now }, { window: 1 });
    const n = 36;
    await Promise.all(Array.from({ length: n }, (_, i) => gw.submit(sms(i))));
    expect(sim.stats().throttled).toBeGreaterThanOrEqual(3);
    expect(sim.submissions().map((s) => smsIndex(s.text))).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('reconnects with growing backoff when the server drops, and sends what was queued meanwhile', async () => {
    await setup();
    await sim.pause(); // drops the session and refuses new connections
    await until('4 disconnects', () => states.filter((s) => s.state === 'disconnected').length >= 4, { timeoutMs: 8_000, everyMs: 10 });
    const pending = [1, 2, 3].map((i) => gw.submit(sms(i)));
    const delays = states.filter((s) => s.state === 'disconnected').map((s) => s.reconnectInMs!);
    // Equal jitter: attempt k waits between 40·2^k / 2 and 40·2^k ms, capped at 320.
    delays.slice(0, 4).forEach((d, k) => {
      expect(d).toBeGreaterThanOrEqual(Math.min(320, 40 * 2 ** k) / 2);
      expect(d).toBeLessThanOrEqual(Math.min(320, 40 * 2 ** k));
    });
    expect(gw.stats()).toMatchObject({ state: expect.stringMatching(/disconnected|connecting/), queued: 3 });
    await sim.resume();
    const results = await Promise.all(pending);
    expect(results).toHaveLength(3);
    expect(sim.stats().binds).toBe(2);
    expect(gw.state).toBe('bound');
  });

  it('fails a submit already written when the link drops as connection_lost, and does not resend it', async () => {
    await setup({ submitResponseDelayMs: 5_000 });
    const inflight = gw.submit(sms(1));
    await until('the submit at the SMSC', () => sim.stats().submits === 1, { timeoutMs: 8_000, everyMs: 10 });
    sim.dropSessions();
    await expect(inflight).rejects.toMatchObject({ code: 'connection_lost', retryable: true });
    await until('the link bound again', () => gw.state === 'bound', { timeoutMs: 8_000, everyMs: 10 });
    expect(sim.stats().submits).toBe(1);
  });

  it('sends enquire_link to keep the link alive, and drops a link whose peer went silent', async () => {
    await setup({}, { enquireLinkMs: 40, enquireLinkTimeoutMs: 100, bindTimeoutMs: 150 });
    await until('2 enquire_links', () => sim.stats().enquireLinks >= 2, { timeoutMs: 8_000, everyMs: 10 });
    sim.silent = true; // half-open: the socket stays up, nothing answers
    await until('the silent link dropped', () => states.some((s) => s.state === 'disconnected'), { timeoutMs: 8_000, everyMs: 10 });
    expect(gw.state).not.toBe('bound');
    sim.silent = false;
    await gw.whenBound(5_000);
    expect(sim.stats().binds).toBe(2);
  });

  it('asks the SMSC to redeliver a receipt the sink could not take (ESME_RX_T_APPN)', async () => {
    let failures = 1;
    await setup(
      {},
      {
        sink: (r) => {
          if (failures-- > 0) throw new Error('bus down');
          receipts.push(r);
        },
      },
    );
    await gw.submit(sms(1));
    await until('the receipt', () => receipts.length === 1, { timeoutMs: 8_000, everyMs: 10 });
    expect(receipts[0]).toMatchObject({ otpId: 'otp1', status: 'delivered' });
    // deliver_sm_resp leaves after the sink returned, so the simulator sees the ack a moment later.
    await until('the receipt acked', () => sim.stats().receiptsAcked === 1, { timeoutMs: 8_000, everyMs: 10 });
    expect(sim.stats().receiptsNacked).toBe(1);
  });

  it('refuses voice, and close() fails queued submits as never sent, then unbinds', async () => {
    await setup();
    await expect(gw.submit({ ...sms(1), channel: 'voice', speech: 'x' } as never)).rejects.toMatchObject({
      code: 'unsupported_channel',
      retryable: true,
    });
    await sim.pause();
    await until('the link down', () => gw.state !== 'bound', { timeoutMs: 8_000, everyMs: 10 });
    const queued = gw.submit(sms(2));
    await gw.close();
    await expect(queued).rejects.toMatchObject({ code: 'closed', detail: 'not_sent' });
    expect(gw.state).toBe('closed');
    await expect(gw.submit(sms(3))).rejects.toMatchObject({ code: 'closed' });
  });

  it('refuses a bad bind and keeps retrying with backoff', async () => {
    sim = await SmppSimulator.start({ config: QUIET, password: 'other' });
    states = [];
    gw = startSmppGateway(sim.port, {
      reconnect: { baseMs: 20, maxMs: 80 },
      onStateChange: (state, d) => states.push({ state, ...d }),
    });
    await until('2 bind failures', () => sim.stats().bindFailures >= 2, { timeoutMs: 8_000, everyMs: 10 });
    expect(gw.state).not.toBe('bound');
    await expect(gw.whenBound(50)).rejects.toMatchObject({ code: 'timeout' });
  });
});
