import type { Receipt, SubmitRequest } from '../../carrier-gateway.port.js';
import { CarrierError } from '../../carrier-gateway.port.js';
import { latencyFor, parseSimulatorConfig } from './simulator.config.js';
import { SimulatorCarrierGateway } from './simulator.carrier-gateway.js';
import { SimulatorEngine } from './simulator.engine.js';
import { until } from '#testing';

const QUIET = { failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0, timeScale: 0 };

const sms = (i: number, phone = '+84912345678'): SubmitRequest => ({
  otpId: `otp${i}`,
  attempt: 1,
  phoneE164: phone,
  carrier: 'vinaphone',
  channel: 'sms',
  text: `Ma ${1000 + i}`,
  digits: String(1000 + i),
});
const voice = (i: number): SubmitRequest => ({
  otpId: `otp${i}`,
  attempt: 1,
  phoneE164: '+84961234567',
  carrier: 'viettel',
  channel: 'voice',
  speech: 'một, hai',
  digits: '1234',
});

/** Collects receipts; resolves when `n` arrived. Bounded by jest's timeout. */
function collector() {
  const got: Receipt[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const sink = (r: Receipt): void => {
    got.push(r);
    for (const w of waiters.filter((w) => got.length >= w.n)) w.resolve();
  };
  const wait = (n: number): Promise<Receipt[]> =>
    got.length >= n ? Promise.resolve(got) : new Promise((resolve) => waiters.push({ n, resolve: () => resolve(got) }));
  return { got, sink, wait };
}

const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('simulator config', () => {
  it('defaults follow the product promise', () => {
    const c = parseSimulatorConfig({});
    expect(latencyFor(c, 'viettel', 'voice')).toEqual({ minMs: 5_000, maxMs: 10_000 });
    expect(latencyFor(c, 'mobifone', 'sms')).toEqual({ minMs: 15_000, maxMs: 45_000 });
    expect(latencyFor(c, 'viettel', 'sms')).toEqual({ minMs: 2_000, maxMs: 8_000 });
    expect(c).toMatchObject({ seed: 1, timeScale: 1, failureRate: 0.03, lostReceiptRate: 0.02, duplicateReceiptRate: 0.01, maxSubmitsPerSecond: 0 });
  });

  it('merges per-carrier overrides over the defaults', () => {
    const c = parseSimulatorConfig({ latency: { byCarrier: { viettel: { sms: { minMs: 1, maxMs: 2 } } } } });
    expect(latencyFor(c, 'viettel', 'sms')).toEqual({ minMs: 1, maxMs: 2 });
    expect(latencyFor(c, 'mobifone', 'sms')).toEqual({ minMs: 15_000, maxMs: 45_000 });
  });

  it('refuses nonsense', () => {
    expect(() => parseSimulatorConfig({ failureRate: 2 })).toThrow();
    expect(() => parseSimulatorConfig({ latency: { sms: { minMs: 5, maxMs: 1 } } })).toThrow();
    expect(() => parseSimulatorConfig({ typo: 1 })).toThrow();
  });
});

describe('simulator in-process face', () => {
  it('delivers SMS and answers voice, with the otp reference attached', async () => {
    const c = collector();
    const gw = new SimulatorCarrierGateway({ config: QUIET, sink: c.sink });
    const a = await gw.submit(sms(1));
    const b = await gw.submit(voice(2));
    const got = await c.wait(2);
    expect(got.map((r) => [r.providerMessageId, r.status, r.otpId, r.attempt])).toEqual(
      expect.arrayContaining([
        [a.providerMessageId, 'delivered', 'otp1', 1],
        [b.providerMessageId, 'answered', 'otp2', 1],
      ]),
    );
    expect(got[0]!.raw).toMatch(/^id:\w+ .*stat:(DELIVRD|ANSWERED)/);
    await gw.close();
  });

  it('is reproducible: same seed, same ids and fates; another seed differs', async () => {
    const run = async (seed: number) => {
      const c = collector();
      const gw = new SimulatorCarrierGateway({ config: { ...QUIET, seed, failureRate: 0.5 }, sink: c.sink });
      const ids = [];
      for (let i = 0; i < 20; i++) ids.push((await gw.submit(sms(i))).providerMessageId);
      const got = await c.wait(20);
      await gw.close();
      const byId = new Map(got.map((r) => [r.providerMessageId, r.status]));
      return ids.map((id) => `${id}:${byId.get(id)}`);
    };
    const first = await run(7);
    expect(await run(7)).toEqual(first);
    expect(await run(8)).not.toEqual(first);
    expect(new Set(first.map((s) => s.split(':')[1])).size).toBe(2); // both fates occur at 0.5
  });

  it('applies failure, loss and duplicate rates', async () => {
    const failing = collector();
    const f = new SimulatorCarrierGateway({ config: { ...QUIET, failureRate: 1 }, sink: failing.sink });
    await f.submit(sms(1));
    await f.submit(voice(2));
    expect((await failing.wait(2)).map((r) => r.status).sort()).toEqual(['unanswered', 'undelivered']);

    const dup = collector();
    const d = new SimulatorCarrierGateway({ config: { ...QUIET, duplicateReceiptRate: 1 }, sink: dup.sink });
    const { providerMessageId } = await d.submit(sms(3));
    expect((await dup.wait(2)).map((r) => r.providerMessageId)).toEqual([providerMessageId, providerMessageId]);

    const lost = collector();
    const l = new SimulatorCarrierGateway({ config: { ...QUIET, lostReceiptRate: 1 }, sink: lost.sink });
    await l.submit(sms(4));
    await tick(50);
    expect(lost.got).toEqual([]);
    await Promise.all([f.close(), d.close(), l.close()]);
  });

  it('hands a receipt the sink refused again later, as an upstream resends it, and no more once closed', async () => {
    const got: Receipt[] = [];
    let refusals = 2;
    const gw = new SimulatorCarrierGateway({
      config: QUIET,
      sink: (r) => {
        if (refusals-- > 0) throw new Error('state file refuses writes');
        got.push(r);
      },
    });
    const { providerMessageId } = await gw.submit(sms(5));
    // Refused twice: handed again after 100 ms, then 200 ms.
    await tick(120);
    expect(got).toEqual([]);
    await until('the receipt handed a third time', () => got.length > 0);
    expect(got.map((r) => r.providerMessageId)).toEqual([providerMessageId]);

    let calls = 0;
    const closing = new SimulatorCarrierGateway({
      config: QUIET,
      sink: () => {
        calls++;
        throw new Error('down');
      },
    });
    await closing.submit(sms(6));
    await until('the first hand-over', () => calls === 1);
    await Promise.all([gw.close(), closing.close()]);
    await tick(250);
    expect(calls).toBe(1);
  });

  it('hits roughly the configured failure rate over many messages', () => {
    const engine = new SimulatorEngine({ ...QUIET, failureRate: 0.2, seed: 3 });
    let failed = 0;
    for (let i = 0; i < 2_000; i++) engine.accept('viettel', 'sms', (r) => void (r.status === 'undelivered' && failed++));
    return tick(50).then(() => {
      expect(failed / 2_000).toBeGreaterThan(0.17);
      expect(failed / 2_000).toBeLessThan(0.23);
      engine.close();
    });
  });

  it('scales latency by timeScale', async () => {
    const c = collector();
    const gw = new SimulatorCarrierGateway({
      config: { ...QUIET, timeScale: 0.01, latency: { voice: { minMs: 5_000, maxMs: 5_000 } } },
      sink: c.sink,
    });
    const t0 = performance.now();
    await gw.submit(voice(1));
    await c.wait(1);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(45);
    expect(took).toBeLessThan(1_000);
    await gw.close();
  });

  it('throttles beyond maxSubmitsPerSecond with a retryable error', async () => {
    let t = 0;
    const gw = new SimulatorCarrierGateway({ config: { ...QUIET, maxSubmitsPerSecond: 5 }, sink: () => undefined, now: () => t });
    for (let i = 0; i < 5; i++) await gw.submit(sms(i, `+8491234560${i}`));
    await expect(gw.submit(sms(9))).rejects.toMatchObject({ code: 'throttled', retryable: true });
    t += 200; // one token back
    await expect(gw.submit(sms(10))).resolves.toHaveProperty('providerMessageId');
    await expect(gw.submit(sms(11))).rejects.toBeInstanceOf(CarrierError);
    await gw.close();
  });

  it('refuses voice to Mobifone, bad numbers and simulated upstream errors with the right retryability', async () => {
    const gw = new SimulatorCarrierGateway({ config: QUIET, sink: () => undefined });
    await expect(gw.submit({ ...voice(1), phoneE164: '+84901234567', carrier: 'mobifone' })).rejects.toMatchObject({
      code: 'no_route',
      retryable: false,
    });
    await expect(gw.submit({ ...sms(1), phoneE164: '+14155550100' })).rejects.toMatchObject({ code: 'invalid_request', retryable: false });
    const flaky = new SimulatorCarrierGateway({ config: { ...QUIET, submitErrorRate: 1 }, sink: () => undefined });
    await expect(flaky.submit(sms(1))).rejects.toMatchObject({ code: 'unavailable', retryable: true });
    await gw.close();
    await flaky.close();
    await expect(gw.submit(sms(2))).rejects.toMatchObject({ code: 'closed' });
  });

  it('close() cancels receipts still on their timers', async () => {
    const c = collector();
    const gw = new SimulatorCarrierGateway({ config: { ...QUIET, timeScale: 1 }, sink: c.sink });
    await gw.submit(sms(1));
    await gw.close();
    await tick(30);
    expect(c.got).toEqual([]);
  });
});

describe('simulator timers', () => {
  it('fires every delay, never early, in time order; close() drops what is pending', async () => {
    const engine = new SimulatorEngine();
    const started = performance.now();
    const fired: { delay: number; at: number }[] = [];
    const delays = [0, 3, 12, 25, 25, 40, 70, 15];
    for (const delay of delays) engine.after(delay, () => fired.push({ delay, at: performance.now() - started }));
    engine.after(5_000, () => fired.push({ delay: 5_000, at: performance.now() - started }));
    expect(engine.pendingTimers).toBe(delays.length + 1);
    await new Promise((r) => setTimeout(r, 150));
    expect(fired.map((f) => f.delay)).toEqual([...delays].sort((a, b) => a - b));
    // Timers may run up to a millisecond before their nominal time on Node; never a whole slot.
    for (const f of fired) expect(f.at).toBeGreaterThanOrEqual(f.delay - 1);
    expect(engine.pendingTimers).toBe(1);
    engine.close();
    expect(engine.pendingTimers).toBe(0);
  });
});
