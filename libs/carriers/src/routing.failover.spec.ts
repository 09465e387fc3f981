/**
 * The routing table as NEXO_CARRIERS builds it, walked the way the dispatcher
 * walks it (nextStepIndex on each CarrierError), with http gateways talking to
 * scripted aggregators on 127.0.0.1 (node:http, ephemeral ports). What the
 * dispatcher records about each step is tested in
 * apps/worker/test/dispatch-failover.e2e.spec.ts; this is the library's half:
 * config → gateways → which error moves the plan on.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CarrierError, type SubmitRequest } from './carrier-gateway.port.js';
import { CarriersConfigEnvSchema, createCarriers, type Carriers } from './carriers.config.js';
import { RoutingTable, nextStepIndex, type RouteStep } from './routing-table.js';

const SECRET = 'aggregator-secret-0123456789abcdef';

type Action = { status: number; body?: string } | { hang: true };

async function scriptedUpstream(script: Action[] = []) {
  let requests = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests++;
      const action = script.shift() ?? { status: 202, body: JSON.stringify({ message_id: `m-${requests}` }) };
      if ('hang' in action) return;
      res.writeHead(action.status, { 'content-type': 'application/json' }).end(action.body ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

const request = (step: RouteStep, attempt: number): SubmitRequest =>
  step.channel === 'sms'
    ? { otpId: 'otp_walk', attempt, phoneE164: '+84961234567', carrier: 'viettel', channel: 'sms', text: 'Ma 4829', digits: '4829' }
    : { otpId: 'otp_walk', attempt, phoneE164: '+84961234567', carrier: 'viettel', channel: 'voice', speech: 'bốn tám hai chín', digits: '4829' };

/** The dispatcher's loop without the event log: each step's outcome, until routed or the plan ends. */
async function walk(carriers: Carriers, plan: RouteStep[]): Promise<string[]> {
  const out: string[] = [];
  for (let i: number | null = 0, attempt = 1; i !== null; attempt++) {
    const step = plan[i]!;
    try {
      await carriers.gateways.get(step.provider)!.submit(request(step, attempt));
      out.push(`${step.provider}/${step.channel}: routed`);
      return out;
    } catch (e) {
      const err = e as CarrierError;
      out.push(`${step.provider}/${step.channel}: ${err.code}`);
      i = nextStepIndex(plan, i, err.retryable);
    }
  }
  return out;
}

describe('routing table: the other direction of auto', () => {
  it('an SMS-first auto plan falls back to the carrier’s voice providers, each channel in its own order', () => {
    const table = RoutingTable.fromConfig({ viettel: { sms: ['s1', 's2'], voice: ['v1', 'v2'] }, mobifone: { sms: ['s1'] } });
    expect(table.plan('viettel', 'sms', true)).toEqual([
      { provider: 's1', channel: 'sms' },
      { provider: 's2', channel: 'sms' },
      { provider: 'v1', channel: 'voice' },
      { provider: 'v2', channel: 'voice' },
    ]);
    expect(table.plan('mobifone', 'sms', true)).toEqual([{ provider: 's1', channel: 'sms' }]);
  });
});

describe('config → gateways → failover, over loopback HTTP', () => {
  const upstreams: Awaited<ReturnType<typeof scriptedUpstream>>[] = [];
  let carriers: Carriers | undefined;
  const up = async (script: Action[] = []) => {
    const u = await scriptedUpstream(script);
    upstreams.push(u);
    return u;
  };
  const http_ = (name: string, baseUrl: string, extra: object = {}) => ({ kind: 'http', name, baseUrl, secret: SECRET, ...extra });
  /** As the service reads it: NEXO_CARRIERS is JSON text. */
  const fromEnv = (config: object) => createCarriers(CarriersConfigEnvSchema.parse(JSON.stringify(config)), { sink: () => undefined });

  afterEach(async () => {
    await carriers?.close();
    carriers = undefined;
    await Promise.all(upstreams.splice(0).map((u) => u.close()));
  });

  it('timeoutMs and maxRetries from NEXO_CARRIERS reach the http gateway', async () => {
    const hung = await up([{ hang: true }, { hang: true }]);
    const flaky = await up([{ status: 503 }, { status: 503 }, { status: 503 }]);
    carriers = fromEnv({
      providers: [http_('hung', hung.url, { timeoutMs: 120, maxRetries: 0 }), http_('flaky', flaky.url, { maxRetries: 2 })],
      routes: { viettel: { sms: ['hung'], voice: ['flaky'] } },
    });
    const t0 = Date.now();
    await expect(carriers.gateways.get('hung')!.submit(request({ provider: 'hung', channel: 'sms' }, 1))).rejects.toMatchObject({
      code: 'timeout',
      message: 'no answer within 120 ms',
    });
    expect(Date.now() - t0).toBeLessThan(1_500);
    expect(hung.requests()).toBe(1);
    // A fourth try would get 202: maxRetries 2 stops after three (default backoff, ≤ 200 + 400 ms of pauses).
    await expect(carriers.gateways.get('flaky')!.submit(request({ provider: 'flaky', channel: 'voice' }, 1))).rejects.toMatchObject({
      code: 'unavailable',
      retryable: true,
    });
    expect(flaky.requests()).toBe(3);
  });

  it('an auto plan moves on through 429, 5xx and a refused connection, across the channel boundary, to the first provider that takes it', async () => {
    const throttled = await up([{ status: 429, body: '{"error":"throttled"}' }]);
    const down = await up([{ status: 502 }]);
    const fine = await up();
    const unused = await up();
    const nobody = await up();
    const refusedUrl = nobody.url;
    await nobody.close();
    upstreams.splice(upstreams.indexOf(nobody), 1);
    carriers = fromEnv({
      providers: [
        http_('v-throttled', throttled.url),
        http_('v-refused', refusedUrl, { maxRetries: 0 }),
        http_('s-down', down.url, { maxRetries: 0 }),
        http_('s-fine', fine.url),
        http_('s-unused', unused.url),
      ],
      routes: { viettel: { voice: ['v-throttled', 'v-refused'], sms: ['s-down', 's-fine', 's-unused'] } },
    });
    expect(await walk(carriers, carriers.routing.plan('viettel', 'voice', true))).toEqual([
      'v-throttled/voice: throttled',
      'v-refused/voice: network',
      's-down/sms: unavailable',
      's-fine/sms: routed',
    ]);
    expect([throttled, down, fine, unused].map((u) => u.requests())).toEqual([1, 1, 1, 0]);
  });

  it('a 4xx ends the plan at once, with providers left untried', async () => {
    const rejecting = await up([{ status: 422, body: '{"error":"content_blocked"}' }]);
    const next = await up();
    carriers = fromEnv({
      providers: [http_('first', rejecting.url), http_('second', next.url)],
      routes: { viettel: { voice: ['first'], sms: ['second'] } },
    });
    expect(await walk(carriers, carriers.routing.plan('viettel', 'voice', true))).toEqual(['first/voice: rejected']);
    expect(next.requests()).toBe(0);
  });
});
