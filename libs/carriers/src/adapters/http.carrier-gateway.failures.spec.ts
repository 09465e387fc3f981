/**
 * The http adapter against a scripted aggregator on 127.0.0.1 (node:http,
 * ephemeral port): what it sends, how it signs it, and how each way an
 * upstream can fail becomes a CarrierError. The simulator's HTTP face (see
 * http.carrier-gateway.int.spec.ts) cannot hang after the headers, reset a
 * connection, answer an unreadable 2xx or fail differently per try, so these
 * cases use a server whose every answer the test chooses.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CarrierError, type CarrierLogger, type SubmitRequest } from '../carrier-gateway.port.js';
import { HttpCarrierGateway, type HttpCarrierGatewayOptions } from './http.carrier-gateway.js';
import { MAX_BODY_BYTES, SubmitBodySchema, verifyReceiptSignature } from './http.protocol.js';

const SECRET = 'aggregator-secret-0123456789abcdef';
const PHONE = '+84912345678';
const CODE = '482913';

/** What the upstream does with one request: answer, never answer, stall after the headers, or drop the connection. */
type Action =
  | { status: number; body?: string; headers?: Record<string, string> }
  | { hang: true }
  | { stallAfterHeaders: true }
  | { reset: true };

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
}

const ok = (id = 'm-1'): Action => ({ status: 202, body: JSON.stringify({ message_id: id, status: 'accepted' }) });

/** An aggregator that plays `script` in order, then answers 202 to everything. */
async function scriptedUpstream(script: Action[] = []) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      const action = script.shift() ?? ok(`m-${seen.length}`);
      if ('hang' in action) return;
      if ('reset' in action) return void req.socket.destroy();
      if ('stallAfterHeaders' in action) {
        res.writeHead(202, { 'content-type': 'application/json' });
        res.write('{"message_');
        return;
      }
      res.writeHead(action.status, { 'content-type': 'application/json', ...action.headers }).end(action.body ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** A loopback port nobody listens on (taken from the OS, then released). */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function recordingLogger() {
  const lines: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, fields, msg });
  const logger: CarrierLogger = { info: at('info'), warn: at('warn'), error: at('error') };
  return { lines, logger };
}

const sms = (otpId: string, attempt = 1): SubmitRequest => ({
  otpId,
  attempt,
  phoneE164: PHONE,
  carrier: 'vinaphone',
  channel: 'sms',
  text: `Ma xac thuc cua ban la ${CODE}.`,
  digits: CODE,
});

async function failure(p: Promise<unknown>): Promise<CarrierError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CarrierError) return e;
    throw e;
  }
  throw new Error('submit succeeded; a CarrierError was expected');
}

describe('http adapter against a scripted upstream', () => {
  let upstream: Awaited<ReturnType<typeof scriptedUpstream>> | undefined;
  let gw: HttpCarrierGateway | undefined;
  const start = async (script: Action[], over: Partial<HttpCarrierGatewayOptions> = {}) => {
    upstream = await scriptedUpstream(script);
    gw = new HttpCarrierGateway({ provider: 'agg', baseUrl: upstream.url, secret: SECRET, timeoutMs: 1_000, maxRetries: 2, backoff: { baseMs: 10, maxMs: 40 }, ...over });
    return { up: upstream, gw };
  };

  afterEach(async () => {
    await gw?.close();
    await upstream?.close();
    gw = undefined;
    upstream = undefined;
  });

  describe('what goes out', () => {
    it('signs every try over its exact bytes, and a retry is the same body under the same Idempotency-Key, signed afresh', async () => {
      let clock = 1_714_560_000_000;
      const now = () => (clock += 1_000);
      const { up, gw } = await start([{ status: 503, body: '{"error":"busy"}' }], { now });
      const r = await gw.submit(sms('otp_sig', 3));
      expect(r).toEqual({ providerMessageId: 'm-2' });
      expect(up.seen).toHaveLength(2);
      const [first, second] = up.seen as [Seen, Seen];
      for (const s of up.seen) {
        expect(s).toMatchObject({ method: 'POST', url: '/v1/messages' });
        expect(s.headers['content-type']).toBe('application/json');
        expect(s.headers['idempotency-key']).toBe('otp_sig:3');
      }
      // Each try carries its own timestamp (the injected clock moved), each verifiable on its own.
      expect(first.headers['x-signature']).toMatch(/^t=1714560001,v1=[0-9a-f]{64}$/);
      expect(second.headers['x-signature']).toMatch(/^t=1714560002,v1=[0-9a-f]{64}$/);
      expect(verifyReceiptSignature(SECRET, first.body, first.headers['x-signature'] as string, { nowMs: 1_714_560_001_000 })).toBe(true);
      expect(verifyReceiptSignature(SECRET, second.body, second.headers['x-signature'] as string, { nowMs: 1_714_560_002_000 })).toBe(true);
      expect(verifyReceiptSignature('some-other-secret-0123456789', first.body, first.headers['x-signature'] as string, { nowMs: 1_714_560_001_000 })).toBe(false);
      expect(second.body).toBe(first.body);
      expect(JSON.parse(first.body)).toEqual({ reference: 'otp_sig:3', to: PHONE, carrier: 'vinaphone', channel: 'sms', text: `Ma xac thuc cua ban la ${CODE}.` });
      expect(SubmitBodySchema.safeParse(JSON.parse(first.body)).success).toBe(true);
    });

    /*
     * Found by this test, fixed 2026-11-26 (it was a bug): HttpCarrierGatewayOptions.baseUrl says "SUBMIT_PATH is appended"
     * and the protocol is `POST {baseUrl}/v1/messages`, but the constructor
     * resolves `new URL(SUBMIT_PATH, baseUrl)` with an absolute SUBMIT_PATH,
     * which throws away any path in baseUrl (with or without a trailing
     * slash). An aggregator served under a prefix (https://host/sms-api) is
     * asked at /v1/messages, answers 404, and that is a final
     * `invalid_request`: every OTP routed there is refunded.
     */
    it('keeps the path of a baseUrl that has one: {baseUrl}/v1/messages', async () => {
      const { up } = await start([]);
      for (const base of [`${up.url}/sms-api`, `${up.url}/sms-api/`]) {
        const g = new HttpCarrierGateway({ provider: 'agg', baseUrl: base, secret: SECRET, maxRetries: 0 });
        try {
          await g.submit(sms('otp_prefix'));
        } finally {
          await g.close();
        }
      }
      expect(up.seen.map((s) => s.url)).toEqual(['/sms-api/v1/messages', '/sms-api/v1/messages']);
    });

    it('sends voice as speech plus digits, and no text', async () => {
      const { up, gw } = await start([]);
      await gw.submit({ otpId: 'otp_v', attempt: 1, phoneE164: '+84961234567', carrier: 'viettel', channel: 'voice', speech: 'bốn, tám, hai, chín', digits: '4829' });
      const body = JSON.parse(up.seen[0]!.body);
      expect(body).toEqual({ reference: 'otp_v:1', to: '+84961234567', carrier: 'viettel', channel: 'voice', speech: 'bốn, tám, hai, chín', digits: '4829' });
      expect(verifyReceiptSignature(SECRET, up.seen[0]!.body, up.seen[0]!.headers['x-signature'] as string)).toBe(true);
    });
  });

  describe('5xx: retried at the same provider, then retryable elsewhere', () => {
    it('retries any 5xx with growing backoff and returns the message id of the try that succeeds', async () => {
      const { up, gw } = await start([{ status: 500 }, { status: 502 }, { status: 504 }], { maxRetries: 3, backoff: { baseMs: 40, maxMs: 1_000 } });
      expect(await gw.submit(sms('otp_5xx'))).toEqual({ providerMessageId: 'm-4' });
      expect(up.seen).toHaveLength(4);
      // Equal jitter: each pause is at least half its step (40, 80, 160 ms); a little slack for timer granularity.
      const gaps = up.seen.slice(1).map((s, i) => s.at - up.seen[i]!.at);
      expect(gaps[0]).toBeGreaterThanOrEqual(20 - 5);
      expect(gaps[1]).toBeGreaterThanOrEqual(40 - 5);
      expect(gaps[2]).toBeGreaterThanOrEqual(80 - 5);
    });

    it('after the last retry fails with `unavailable`, the upstream’s own error word as message, and never the phone or the code in the log', async () => {
      const { lines, logger } = recordingLogger();
      const { up, gw } = await start(
        [
          { status: 503, body: '{"error":"maintenance","message":"back at 10:00"}' },
          { status: 503, body: '{"error":"maintenance"}' },
          { status: 503, body: '{"error":"maintenance"}' },
        ],
        { logger },
      );
      const e = await failure(gw.submit(sms('otp_down')));
      expect(e).toMatchObject({ provider: 'agg', code: 'unavailable', retryable: true, message: 'maintenance', detail: 'http_503' });
      expect(up.seen).toHaveLength(3);
      expect(lines.filter((l) => l.msg === 'carrier submit retry')).toHaveLength(2);
      expect(lines.find((l) => l.msg === 'carrier submit failed')).toMatchObject({ level: 'warn', fields: { error: 'unavailable', tries: 3, otpId: 'otp_down' } });
      const logged = JSON.stringify(lines);
      expect(logged).not.toContain(PHONE);
      expect(logged).not.toContain('912345678');
      expect(logged).not.toContain(CODE);
    });

    it('a 5xx with an unreadable body still says which status it was', async () => {
      const { gw } = await start([{ status: 500, body: '<html>oops</html>' }], { maxRetries: 0 });
      expect(await failure(gw.submit(sms('otp_html')))).toMatchObject({ code: 'unavailable', retryable: true, message: 'http_500', detail: 'http_500' });
    });
  });

  describe('4xx: never retried at the same provider; only refusals about the provider fail over', () => {
    it.each([
      [400, '{"error":"invalid_request"}', 'invalid_request', false],
      [403, '{"error":"forbidden"}', 'unauthorized', true],
      [404, '', 'invalid_request', false],
      [409, '{"error":"conflict"}', 'invalid_request', false],
      [413, '{"error":"too_large"}', 'invalid_request', false],
      [422, '{"error":"no_route"}', 'no_route', true],
      [422, '{"error":"content_blocked"}', 'rejected', false],
    ])('HTTP %i %s → %s (retryable elsewhere: %s) after exactly one request', async (status, body, code, retryable) => {
      const { up, gw } = await start([{ status, body }]);
      const e = await failure(gw.submit(sms('otp_4xx')));
      expect(e).toMatchObject({ code, retryable, detail: `http_${status}` });
      // Let a (wrong) retry's backoff elapse before counting.
      await new Promise((r) => setTimeout(r, 60));
      expect(up.seen).toHaveLength(1);
    });

    it('429 without Retry-After is throttled and retryable elsewhere, with no wait given, after one request', async () => {
      const { up, gw } = await start([{ status: 429, body: '{"error":"slow_down"}' }]);
      const e = await failure(gw.submit(sms('otp_429')));
      expect(e).toMatchObject({ code: 'throttled', retryable: true, message: 'slow_down' });
      expect(e.retryAfterMs).toBeUndefined();
      expect(up.seen).toHaveLength(1);
    });
  });

  describe('timeouts', () => {
    it('a hung upstream times out within timeoutMs per try, is retried under the same key, and ends retryable `timeout`', async () => {
      const { up, gw } = await start([{ hang: true }, { hang: true }], { timeoutMs: 150, maxRetries: 1, backoff: { baseMs: 10, maxMs: 20 } });
      const t0 = Date.now();
      const e = await failure(gw.submit(sms('otp_hang')));
      const took = Date.now() - t0;
      expect(e).toMatchObject({ code: 'timeout', retryable: true, message: 'no answer within 150 ms' });
      expect(up.seen).toHaveLength(2);
      expect(up.seen.map((s) => s.headers['idempotency-key'])).toEqual(['otp_hang:1', 'otp_hang:1']);
      // Two tries of 150 ms and one pause of ≤ 20 ms: bounded by the configuration (with room for a busy machine), not by the upstream.
      expect(took).toBeGreaterThanOrEqual(2 * 150 - 10);
      expect(took).toBeLessThan(1_500);
    });

    it('the timeout covers the response body: headers followed by a stalled body time out too', async () => {
      const { gw } = await start([{ stallAfterHeaders: true }], { timeoutMs: 150, maxRetries: 0 });
      const t0 = Date.now();
      expect(await failure(gw.submit(sms('otp_stall')))).toMatchObject({ code: 'timeout', retryable: true });
      expect(Date.now() - t0).toBeLessThan(1_500);
    });
  });

  describe('network errors and unreadable answers', () => {
    it('connection refused is a retryable `network` error, retried maxRetries times', async () => {
      const { lines, logger } = recordingLogger();
      gw = new HttpCarrierGateway({ provider: 'agg', baseUrl: `http://127.0.0.1:${await closedPort()}`, secret: SECRET, maxRetries: 2, backoff: { baseMs: 10, maxMs: 20 }, logger });
      const e = await failure(gw.submit(sms('otp_refused')));
      expect(e).toMatchObject({ provider: 'agg', code: 'network', retryable: true, detail: 'ECONNREFUSED' });
      expect(lines.filter((l) => l.msg === 'carrier submit retry').map((l) => l.fields.detail)).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
      expect(lines.filter((l) => l.msg === 'carrier submit failed')).toHaveLength(1);
    });

    it('a connection dropped without an answer is retried, and a later success wins', async () => {
      const { up, gw } = await start([{ reset: true }]);
      expect(await gw.submit(sms('otp_reset'))).toEqual({ providerMessageId: 'm-2' });
      expect(up.seen.map((s) => s.headers['idempotency-key'])).toEqual(['otp_reset:1', 'otp_reset:1']);
    });

    it.each([
      ['not JSON', 'accepted!'],
      ['no message_id', '{"status":"accepted"}'],
      ['an empty message_id', '{"message_id":""}'],
      ['a numeric message_id', '{"message_id":42}'],
    ])('a 2xx with %s is `invalid_response`, final, not retried, and ambiguous: the phone’s window is kept (the upstream may have taken it)', async (_what, body) => {
      const { up, gw } = await start([{ status: 202, body }]);
      const e = await failure(gw.submit(sms('otp_garbled')));
      expect(e).toMatchObject({ code: 'invalid_response', retryable: false, detail: 'http_202', ambiguous: true });
      await new Promise((r) => setTimeout(r, 60));
      expect(up.seen).toHaveLength(1);
    });

    /*
     * Found by this test, fixed 2026-11-26 (it was a bug): README's error table says an unreadable 2xx is `invalid_response`
     * (final: the aggregator took the message). A 2xx whose body exceeds
     * MAX_BODY_BYTES is destroyed in post() with `response too large`, which
     * once() cannot tell from a socket error: it becomes a retryable `network`
     * error (detail `unknown`), is retried at the same provider, and then makes
     * the dispatcher release the phone's window and fail over at once: a
     * message the first upstream accepted goes out a second time (I8).
     */
    it('a 2xx too large to read is `invalid_response` and not retried, like any unreadable 2xx', async () => {
      const huge = JSON.stringify({ message_id: 'm-big', status: 'accepted', pad: 'x'.repeat(MAX_BODY_BYTES + 1_024) });
      const { up, gw } = await start([{ status: 202, body: huge }, { status: 202, body: huge }, { status: 202, body: huge }]);
      const e = await failure(gw.submit(sms('otp_huge')));
      expect(e).toMatchObject({ code: 'invalid_response', retryable: false, ambiguous: true });
      expect(up.seen).toHaveLength(1);
    });
  });

  describe('ambiguity survives the retries', () => {
    /*
     * Found by this test, fixed 2026-11-26 (it was a bug): the dispatcher keeps the phone's I8 window (and waits before failing
     * over) only when the final error is `timeout`/`connection_lost`, because
     * then the upstream may have taken the message. submit() throws the LAST
     * try's error: a first try that timed out (the upstream may be sending it)
     * followed by a 5xx on the retry ends as `unavailable`, so the dispatcher
     * releases the window and the next provider sends the same OTP to the same
     * phone at once. The same happens for timeout → connection refused
     * (`network`). The ambiguity of any earlier try should be kept in the
     * error the caller sees.
     */
    it('a submit whose first try timed out stays ambiguous even when the retry gets a 5xx', async () => {
      const { up, gw } = await start([{ hang: true }, { status: 503, body: '{"error":"unavailable"}' }], { timeoutMs: 150, maxRetries: 1 });
      const e = await failure(gw.submit(sms('otp_mixed')));
      expect(up.seen).toHaveLength(2);
      // The last try's answer is kept (a 503), marked ambiguous for the dispatcher (it keeps the window).
      expect(e.code).toBe('unavailable');
      expect(e.detail).toBe('http_503');
      expect(e.ambiguous).toBe(true);
      expect(e.retryable).toBe(true);
    });
  });

  describe('close()', () => {
    it('ends a submit that is waiting out its backoff at once, with `closed`, and makes no further request', async () => {
      const { lines, logger } = recordingLogger();
      const { up, gw } = await start([{ status: 503 }, { status: 503 }, { status: 503 }], { backoff: { baseMs: 5_000, maxMs: 5_000 }, logger });
      const pending = failure(gw.submit(sms('otp_backoff')));
      const deadline = Date.now() + 2_000;
      while (!lines.some((l) => l.msg === 'carrier submit retry') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(lines.find((l) => l.msg === 'carrier submit retry')?.fields.delayMs).toBeGreaterThanOrEqual(2_500);
      const t0 = Date.now();
      await gw.close();
      expect(await pending).toMatchObject({ code: 'closed', retryable: true });
      expect(Date.now() - t0).toBeLessThan(1_000);
      expect(up.seen).toHaveLength(1);
    });

    it('refuses new submits after close() without touching the network', async () => {
      const { up, gw } = await start([]);
      await gw.close();
      expect(await failure(gw.submit(sms('otp_after_close')))).toMatchObject({ code: 'closed' });
      expect(up.seen).toHaveLength(0);
    });
  });
});
