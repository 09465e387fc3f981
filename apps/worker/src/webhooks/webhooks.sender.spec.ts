/**
 * The webhook sender's failure paths, driven through `startWebhooks` itself: a SQLite file, the
 * in-process bus on it, AES-GCM sealing the account's secret, and customer endpoints that are real
 * HTTP servers on loopback. Two things are ours, not real: the directory (a map; the read models
 * behind the real one are not under test) and the clock, frozen and moved by each test, so a
 * backoff is read exactly from its row and a retry goes out when the test makes it due, not after a
 * real wait.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { InProcessMessageBus, TOPICS } from '#bus';
import { createLogger, linesInto } from '#observability';
import { AesGcmCipher, newId, newWebhookSecret } from '#security';
import { until } from '#testing';
import type { WebhookMessage } from '../messages.js';
import { SCAN_ROWS } from './deliveries.table.js';
import { SIGNATURE_HEADER, verifyWebhook } from './signature.js';
import { startWebhooks, type WebhookDirectory, type WebhookOptions } from './webhooks.worker.js';
import type { WebhookOutcome } from './webhooks-thread.js';

type WebhookEvent = Extract<WebhookMessage, { kind: 'event' }>;
type Sender = Awaited<ReturnType<typeof startWebhooks>>;
type Outcome = WebhookOutcome;

/** The sender's scan interval in every test: short, so "not sent again" is seen within a few of them. */
const POLL_MS = 10;
const T0 = Date.UTC(2025, 0, 15, 12, 0, 0);
const HOUR = 3_600_000;

interface DeliveryRow {
  event_id: string;
  otp_id: string;
  account_id: string;
  type: string;
  url: string;
  body: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_ms: number;
  created_ms: number;
  last_code: number | null;
  last_error: string | null;
  delivered_ms: number | null;
}

/** A status code, a request held open until `release`, or a status sent after a delay. */
type Answer = number | 'hold' | { status: number; afterMs: number };

interface Post {
  path: string;
  body: string;
  signature: string;
  contentType: string;
  /** The test clock when the request arrived. */
  clockMs: number;
  receivedAt: number;
}

interface Endpoint {
  url: string;
  posts: Post[];
  /** How the next request (0-based) is answered; a test may swap it. */
  plan: (n: number) => Answer;
  /** Requests received and not yet answered or hung up on. */
  open(): number;
  maxOpen: number;
  connections: number;
  release(status: number): void;
  close(): Promise<void>;
}

describe('webhook sender (startWebhooks) against loopback endpoints', () => {
  let dir: string;
  let file: string;
  let db: Database.Database;
  let bus: InProcessMessageBus;
  let now: number;
  let clockReads: number;
  const logs: string[] = [];
  let outcomes: Outcome[];
  const cipher = new AesGcmCipher({ k1: randomBytes(32) }, 'k1');
  /** The read models' webhooks: an empty URL is a removal; `position`, the log position of the change (default 0). */
  const accounts = new Map<string, { url: string; sealed: string; position?: number }>();
  const facts = new Map<string, { carrier: string; channel: string }>();
  const directory: WebhookDirectory = {
    accountWebhook: (accountId) => {
      const a = accounts.get(accountId);
      return a && { url: a.url, secret: a.sealed, position: a.position ?? 0 };
    },
    otpFacts: (otpId) => facts.get(otpId),
  };
  const endpoints: Endpoint[] = [];
  const senders: { stop(): Promise<void> }[] = [];
  const buses: InProcessMessageBus[] = [];
  const dbs: Database.Database[] = [];

  const clock = () => {
    clockReads++;
    return new Date(now);
  };
  const logger = createLogger({
    level: 'warn',
    destination: linesInto(logs),
  });

  function openDb(): Database.Database {
    const d = new Database(file);
    d.pragma('journal_mode = WAL');
    dbs.push(d);
    return d;
  }
  function openBus(on: Database.Database): InProcessMessageBus {
    const b = new InProcessMessageBus(on, { pollIntervalMs: POLL_MS, retryDelayMs: 50 });
    buses.push(b);
    return b;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-webhooks-'));
    file = join(dir, 'worker.db');
    db = openDb();
    bus = openBus(db);
    now = T0;
    clockReads = 0;
    logs.length = 0;
    outcomes = [];
    accounts.clear();
    facts.clear();
  });

  afterEach(async () => {
    // Together: the endpoints' sockets go down while stop() waits for what is in flight, so a held
    // request ends at once instead of at its timeout.
    await Promise.all([...senders.splice(0).map((s) => s.stop()), ...endpoints.splice(0).map((e) => e.close())]);
    for (const b of buses.splice(0)) await b.close();
    for (const d of dbs.splice(0)) if (d.open) d.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(options: WebhookOptions = {}, on: { db: Database.Database; bus: InProcessMessageBus } = { db, bus }): Promise<Sender> {
    const sender = await startWebhooks(
      { db: on.db, bus: on.bus, cipher, logger, clock, metrics: { webhookAttempt: (o) => outcomes.push(o) } },
      directory,
      // The endpoints listen on loopback, which the sender refuses unless told otherwise.
      { pollMs: POLL_MS, timeoutMs: 2_000, baseDelayMs: 100, privateAddresses: 'allow', ...options },
    );
    let stopping: Promise<void> | undefined;
    const once = { ...sender, stop: () => (stopping ??= sender.stop()) };
    senders.push(once);
    return once;
  }

  /** Registers the account's webhook as `PUT /api/v1/webhook` would; returns the plain secret. */
  function account(accountId: string, url: string): string {
    const secret = newWebhookSecret();
    accounts.set(accountId, { url, sealed: cipher.seal(secret) });
    return secret;
  }

  let seq = 0;
  function event(accountId: string, fields: Partial<WebhookEvent> = {}): WebhookEvent {
    seq++;
    return { kind: 'event', eventId: `evt_${seq}`, type: 'otp.delivered', otpId: newId('otp', now), accountId, at: new Date(now).toISOString(), carrier: 'viettel', channel: 'sms', extra: {}, position: seq, ...fields };
  }
  const publish = (...messages: WebhookMessage[]) => bus.publish(TOPICS.webhooks, messages.map((m) => ({ key: m.accountId, value: m })));

  const row = (eventId: string) => db.prepare<[string], DeliveryRow>('SELECT * FROM webhook_deliveries WHERE event_id = ?').get(eventId);
  const rowCount = () => db.prepare<[], { n: number }>('SELECT count(*) AS n FROM webhook_deliveries').get()!.n;
  const attempt = (eventId: string, n: number) =>
    until(
      () => `attempt ${n} of ${eventId}, row is ${JSON.stringify(row(eventId))}`,
      () => {
        const r = row(eventId);
        return r && r.attempts >= n ? r : undefined;
      },
      { timeoutMs: 3_000, everyMs: 5 },
    );
  const delivered = (eventId: string) =>
    until(`${eventId} delivered`, () => (row(eventId)?.status === 'delivered' ? row(eventId) : undefined), { timeoutMs: 3_000, everyMs: 5 });

  /** Waits until the sender has scanned its table at least `n` more times: how "nothing more is sent" is seen. */
  async function scans(n = 3): Promise<void> {
    const from = clockReads;
    const notBefore = Date.now() + n * POLL_MS;
    await until(`${n} scans`, () => (clockReads - from >= n && Date.now() >= notBefore ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
  }

  async function endpoint(plan: (n: number) => Answer): Promise<Endpoint> {
    const held: ServerResponse[] = [];
    let open = 0;
    const ep: Endpoint = {
      url: '',
      posts: [],
      plan,
      open: () => open,
      maxOpen: 0,
      connections: 0,
      release(status) {
        for (const res of held.splice(0)) if (!res.destroyed) res.writeHead(status).end();
      },
      close: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    };
    const server = createServer((req, res) => {
      ep.maxOpen = Math.max(ep.maxOpen, ++open);
      res.on('close', () => open--);
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        const answer = ep.plan(ep.posts.length);
        ep.posts.push({
          path: req.url ?? '',
          body,
          signature: String(req.headers[SIGNATURE_HEADER.toLowerCase()] ?? ''),
          contentType: String(req.headers['content-type'] ?? ''),
          clockMs: now,
          receivedAt: performance.now(),
        });
        if (answer === 'hold') held.push(res);
        else if (typeof answer === 'number') res.writeHead(answer).end();
        else setTimeout(() => res.destroyed || res.writeHead(answer.status).end(), answer.afterMs);
      });
    });
    server.on('connection', () => ep.connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    ep.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
    endpoints.push(ep);
    return ep;
  }

  /** A loopback port nothing listens on: connecting is refused. */
  async function closedPortUrl(): Promise<string> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((r) => server.close(() => r()));
    return `http://127.0.0.1:${port}/hooks`;
  }

  const signedBy = (secret: string, post: Post) => verifyWebhook(secret, post.body, post.signature, Math.floor(post.clockMs / 1000));

  describe('a 2xx endpoint', () => {
    it('gets each event POSTed once, signed with the account secret, with the fields API.md names; the row ends delivered', async () => {
      const ep = await endpoint(() => 204);
      const secret = account('acc_a', ep.url);
      await start();
      const routed = event('acc_a', { type: 'otp.routed', carrier: 'vinaphone', channel: 'voice' });
      // Without carrier and channel (an OTP requested before a relay restart): the directory has them.
      const refunded = event('acc_a', { type: 'otp.refunded', carrier: undefined, channel: undefined, extra: { reason: 'expired', amount: '22000' } });
      facts.set(refunded.otpId, { carrier: 'mobifone', channel: 'sms' });
      await publish(routed, refunded);

      await delivered(routed.eventId);
      await delivered(refunded.eventId);
      await scans();
      expect(ep.posts).toHaveLength(2);
      const byId = new Map(ep.posts.map((p) => [JSON.parse(p.body).event_id as string, p]));
      expect(JSON.parse(byId.get(routed.eventId)!.body)).toEqual({
        event_id: routed.eventId,
        type: 'otp.routed',
        id: routed.otpId,
        status: 'routed',
        carrier: 'vinaphone',
        channel: 'voice',
        at: routed.at,
      });
      expect(JSON.parse(byId.get(refunded.eventId)!.body)).toEqual({
        event_id: refunded.eventId,
        type: 'otp.refunded',
        id: refunded.otpId,
        status: 'refunded',
        carrier: 'mobifone',
        channel: 'sms',
        at: refunded.at,
        reason: 'expired',
        amount: '0.022000',
      });
      for (const post of ep.posts) {
        expect(post.path).toBe('/hooks');
        expect(post.contentType).toBe('application/json');
        expect(post.signature).toMatch(new RegExp(`^t=${Math.floor(T0 / 1000)},v1=[0-9a-f]{64}$`));
        expect(signedBy(secret, post)).toBe(true);
        expect(signedBy(newWebhookSecret(), post)).toBe(false);
        expect(verifyWebhook(secret, post.body.replace('"otp.', '"otq.'), post.signature, Math.floor(T0 / 1000))).toBe(false);
      }
      for (const e of [routed, refunded]) {
        expect(row(e.eventId)).toMatchObject({ status: 'delivered', attempts: 1, last_code: 204, last_error: null, delivered_ms: T0, url: ep.url });
      }
      expect(outcomes).toEqual(['success', 'success']);
    });

    it('sends to a per-send webhook_url instead of the account URL, signed with the same secret', async () => {
      const configured = await endpoint(() => 204);
      const perSend = await endpoint(() => 200);
      const secret = account('acc_a', configured.url);
      await start();
      const e = event('acc_a');
      await publish({ kind: 'target', otpId: e.otpId, accountId: 'acc_a', url: `${perSend.url}?ref=42` }, e);

      expect(await delivered(e.eventId)).toMatchObject({ url: `${perSend.url}?ref=42`, last_code: 200 });
      expect(perSend.posts.map((p) => p.path)).toEqual(['/hooks?ref=42']);
      expect(signedBy(secret, perSend.posts[0])).toBe(true);
      expect(configured.posts).toHaveLength(0);
    });

    it('uses the webhook the log configured (relayed before the events) while the read models do not know it yet; a reconfiguration from its place in the log on; both kept across a restart', async () => {
      const first = await endpoint(() => 204);
      const second = await endpoint(() => 204);
      const oldSecret = newWebhookSecret();
      const newSecret = newWebhookSecret();
      // The directory (the read models) knows nothing of acc_a: the projector lags behind the relay.
      const sender = await start();
      const before = event('acc_a');
      await publish({ kind: 'account', accountId: 'acc_a', url: first.url, secret: cipher.seal(oldSecret), position: 1 }, before);
      expect(await delivered(before.eventId)).toMatchObject({ url: first.url });
      expect(signedBy(oldSecret, first.posts[0])).toBe(true);

      const after = event('acc_a');
      await publish({ kind: 'account', accountId: 'acc_a', url: second.url, secret: cipher.seal(newSecret), position: 2 }, after);
      expect(await delivered(after.eventId)).toMatchObject({ url: second.url });
      expect(signedBy(newSecret, second.posts[0])).toBe(true);

      await sender.stop();
      await start();
      const later = event('acc_a');
      await publish(later);
      expect(await delivered(later.eventId)).toMatchObject({ url: second.url });
      expect(second.posts).toHaveLength(2);
      expect(signedBy(newSecret, second.posts[1])).toBe(true);
      expect(first.posts).toHaveLength(1);
    });
  });

  describe('accounts without a webhook (customers who poll)', () => {
    it('make no delivery row, even with a per-send target (nothing could sign it); once the log configures one, the events after it are sent', async () => {
      const ep = await endpoint(() => 204);
      await start();
      const polled = event('acc_p');
      await publish({ kind: 'target', otpId: polled.otpId, accountId: 'acc_p', url: ep.url }, polled, event('acc_p'));
      await scans();
      expect(rowCount()).toBe(0);

      const secret = newWebhookSecret();
      const after = event('acc_p');
      await publish({ kind: 'account', accountId: 'acc_p', url: ep.url, secret: cipher.seal(secret), position: 1 }, after);
      expect(await delivered(after.eventId)).toMatchObject({ url: ep.url });
      expect(ep.posts).toHaveLength(1);
      expect(signedBy(secret, ep.posts[0])).toBe(true);
    });
  });

  describe("an account's webhook changed while its partition was another sender's (the distributed mode)", () => {
    it('takes the later change by log position: the read models\' over this file\'s older row, this file\'s over read models lagging behind it, looked at again every 30 s', async () => {
      const a = await endpoint(() => 204);
      const b = await endpoint(() => 204);
      const c = await endpoint(() => 204);
      const [secretA, secretB, secretC] = [newWebhookSecret(), newWebhookSecret(), newWebhookSecret()];
      await start();
      const first = event('acc_m');
      await publish({ kind: 'account', accountId: 'acc_m', url: a.url, secret: cipher.seal(secretA), position: 5 }, first);
      expect(await delivered(first.eventId)).toMatchObject({ url: a.url });

      // Another sender consumed a PUT of B at position 9 meanwhile; the read models have it.
      accounts.set('acc_m', { url: b.url, sealed: cipher.seal(secretB), position: 9 });
      now += 31_000;
      const second = event('acc_m');
      await publish(second);
      expect(await delivered(second.eventId)).toMatchObject({ url: b.url });
      expect(signedBy(secretB, b.posts[0])).toBe(true);

      // Then a DELETE at position 12, also consumed elsewhere: nothing more is made.
      accounts.set('acc_m', { url: '', sealed: '', position: 12 });
      now += 31_000;
      const third = event('acc_m');
      await publish(third);
      await scans();
      expect(row(third.eventId)).toBeUndefined();

      // This sender consumes a PUT of C at 20, the read models still at 12: its own row wins.
      const fourth = event('acc_m');
      await publish({ kind: 'account', accountId: 'acc_m', url: c.url, secret: cipher.seal(secretC), position: 20 }, fourth);
      expect(await delivered(fourth.eventId)).toMatchObject({ url: c.url });
      // A replay of an older change (the relay from its checkpoint) changes nothing.
      const fifth = event('acc_m');
      await publish({ kind: 'account', accountId: 'acc_m', url: a.url, secret: cipher.seal(secretA), position: 5 }, fifth);
      expect(await delivered(fifth.eventId)).toMatchObject({ url: c.url });
      expect(a.posts).toHaveLength(1);
    });
  });

  describe('a removed webhook (DELETE /api/v1/webhook)', () => {
    it('gives up the retries waiting for it, also when a new webhook is set before they come due; makes no row for events between, though the read models still know it', async () => {
      const old = await endpoint(() => 503);
      account('acc_r', old.url);
      await start({ baseDelayMs: 100, maxDelayMs: 100 });
      const failing = event('acc_r');
      await publish(failing);
      await attempt(failing.eventId, 1);

      // Removed, then a new endpoint, all before the retry is due. The directory (the read models) still has the old one.
      const between = event('acc_r');
      const secret = newWebhookSecret();
      const fresh = await endpoint(() => 204);
      const after = event('acc_r');
      await publish({ kind: 'account_removed', accountId: 'acc_r', position: 1 }, between, { kind: 'account', accountId: 'acc_r', url: fresh.url, secret: cipher.seal(secret), position: 2 }, after);
      expect(await delivered(after.eventId)).toMatchObject({ url: fresh.url });
      expect(signedBy(secret, fresh.posts[0])).toBe(true);
      expect(row(between.eventId)).toBeUndefined();

      now += 1_000;
      await until('the retry given up', () => (row(failing.eventId)?.status === 'failed' ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
      expect(row(failing.eventId)).toMatchObject({ status: 'failed', attempts: 1, last_error: 'webhook removed' });
      expect(old.posts).toHaveLength(1);
      expect(fresh.posts).toHaveLength(1);
    });

    it('keeps the removal across a restart: no row for later events, even from the read models', async () => {
      const ep = await endpoint(() => 204);
      account('acc_s', ep.url);
      const sender = await start();
      await publish({ kind: 'account_removed', accountId: 'acc_s', position: 1 });
      await scans();
      await sender.stop();
      await start();
      const later = event('acc_s');
      await publish(later);
      await scans();
      expect(row(later.eventId)).toBeUndefined();
      expect(ep.posts).toHaveLength(0);
    });
  });

  describe('non-2xx answers are retried with exponential backoff and jitter', () => {
    it('sends the same event_id and body each time, counts attempts in the row, and waits [½, 1) × min(maxDelayMs, baseDelayMs · 2^(n−1)) after attempt n', async () => {
      const failures = [500, 503, 404, 500, 502];
      const ep = await endpoint((n) => failures[n] ?? 204);
      const secret = account('acc_a', ep.url);
      await start({ baseDelayMs: 100, maxDelayMs: 400 });
      const e = event('acc_a');
      await publish(e);

      const delays: number[] = [];
      for (let n = 1; n <= failures.length; n++) {
        const r = await attempt(e.eventId, n);
        expect(r).toMatchObject({ status: 'pending', attempts: n, last_code: failures[n - 1], last_error: `http ${failures[n - 1]}` });
        const cap = Math.min(400, 100 * 2 ** (n - 1));
        const delay = r.next_ms - now;
        expect(delay).toBeGreaterThanOrEqual(cap / 2);
        expect(delay).toBeLessThan(cap);
        delays.push(delay);
        // Not sent again before it is due.
        await scans();
        expect(ep.posts).toHaveLength(n);
        now = Math.ceil(r.next_ms);
      }
      // Below the cap each draw lies in [cap/2, cap) and the cap doubles, so the delays never shrink.
      expect(delays[1]).toBeGreaterThanOrEqual(delays[0]);
      expect(delays[2]).toBeGreaterThanOrEqual(delays[1]);

      expect(await delivered(e.eventId)).toMatchObject({ attempts: failures.length + 1, last_code: 204, delivered_ms: now });
      expect(ep.posts).toHaveLength(failures.length + 1);
      for (const post of ep.posts) {
        expect(post.body).toBe(ep.posts[0].body);
        expect(signedBy(secret, post)).toBe(true);
      }
      expect(JSON.parse(ep.posts[0].body).event_id).toBe(e.eventId);
      expect(outcomes).toEqual(['http_5xx', 'http_5xx', 'http_4xx', 'http_5xx', 'http_5xx', 'success']);
      // Operators see the account's failures in the log: one line a minute at most, never the URL.
      const lines = logs.filter((l) => l.includes('webhook attempt failed')).map((l) => JSON.parse(l));
      expect(lines).toEqual([expect.objectContaining({ level: 40, accountId: 'acc_a', eventId: e.eventId, attempts: 1, error: 'http 500', failedSinceLastLine: 0 })]);
      expect(logs.join('')).not.toContain(ep.url);
    });
  });

  describe('timeouts and network failures', () => {
    it('gives up on an endpoint that never answers after timeoutMs, records "timeout", and retries it when due', async () => {
      const ep = await endpoint((n) => (n === 0 ? 'hold' : 204));
      account('acc_a', ep.url);
      await start({ timeoutMs: 150, baseDelayMs: 100 });
      const e = event('acc_a');
      await publish(e);

      await until('the first POST', () => (ep.posts.length === 1 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
      const r = await attempt(e.eventId, 1);
      // undici's headers timer ticks about every 0.5 s: the hang-up comes between timeoutMs and a second or so later.
      expect(performance.now() - ep.posts[0].receivedAt).toBeGreaterThanOrEqual(100);
      expect(r).toMatchObject({ status: 'pending', attempts: 1, last_code: null, last_error: 'timeout' });
      expect(r.next_ms - now).toBeGreaterThanOrEqual(50);
      expect(r.next_ms - now).toBeLessThan(100);
      expect(outcomes).toEqual(['timeout']);
      // The sender hung up on the held request.
      await until('the held request to close', () => (ep.open() === 0 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
      await scans();
      expect(ep.posts).toHaveLength(1);

      now = Math.ceil(r.next_ms);
      expect(await delivered(e.eventId)).toMatchObject({ attempts: 2, last_code: 204 });
      expect(ep.posts.map((p) => p.body)).toEqual([ep.posts[0].body, ep.posts[0].body]);
    });

    it('counts a refused connection as a network failure and retries it when due', async () => {
      account('acc_a', await closedPortUrl());
      await start({ baseDelayMs: 100 });
      const e = event('acc_a');
      await publish(e);

      const first = await attempt(e.eventId, 1);
      expect(first).toMatchObject({ status: 'pending', attempts: 1, last_code: null });
      expect(first.last_error).toMatch(/ECONNREFUSED/);
      expect(outcomes).toEqual(['network']);
      await scans();
      expect(row(e.eventId)!.attempts).toBe(1);

      now = Math.ceil(first.next_ms);
      const second = await attempt(e.eventId, 2);
      expect(second).toMatchObject({ status: 'pending', attempts: 2, last_code: null });
      expect(second.last_error).toMatch(/ECONNREFUSED/);
      expect(second.next_ms - now).toBeGreaterThanOrEqual(100);
      expect(outcomes).toEqual(['network', 'network']);
    });

    // Found by this test (2026-11-26): the retry was scheduled from the clock read before the POST,
    // so after a timeout (5 s by default against a first delay of 0.5-1 s) it was already overdue and
    // a too-slow endpoint was hit back to back for its first retries. The delay counts from the end.
    it('waits the backoff after a timed-out attempt ends, not from when it started', async () => {
      // The clock moves 5 s while the request is held: the default timeoutMs, against a 1 s baseDelayMs.
      const ep = await endpoint(() => {
        now += 5_000;
        return 'hold';
      });
      account('acc_a', ep.url);
      await start({ timeoutMs: 150, baseDelayMs: 1_000 });
      const e = event('acc_a');
      await publish(e);

      const r = await attempt(e.eventId, 1);
      expect(r.last_error).toBe('timeout');
      expect(r.next_ms).toBeGreaterThanOrEqual(now + 500);
      await scans();
      expect(ep.posts).toHaveLength(1);
    });
  });

  describe('the retry window', () => {
    it('marks a row failed once its next attempt would fall past retryForMs, and never sends it again', async () => {
      const ep = await endpoint(() => 500);
      account('acc_a', ep.url);
      await start({ baseDelayMs: 100, maxDelayMs: 10_000, retryForMs: 1_000 });
      const e = event('acc_a');
      await publish(e);

      let r = await attempt(e.eventId, 1);
      for (let n = 2; r.status === 'pending'; n++) {
        // A pending row is never scheduled past the window.
        expect(r.next_ms - r.created_ms).toBeLessThanOrEqual(1_000);
        now = Math.ceil(r.next_ms);
        if (n > 10) throw new Error(`still pending after ${n - 1} attempts`);
        r = await attempt(e.eventId, n);
      }
      // Delays of [50,100), [100,200), [200,400), [400,800), [800,1600) ms: the 4th or the 5th attempt is the last.
      expect(r).toMatchObject({ status: 'failed', last_code: 500, last_error: 'http 500' });
      expect(r.attempts).toBeGreaterThanOrEqual(4);
      expect(r.attempts).toBeLessThanOrEqual(5);
      expect(ep.posts).toHaveLength(r.attempts);
      for (const post of ep.posts) expect(post.clockMs).toBeLessThanOrEqual(T0 + 1_000);
      expect(logs.join('')).toContain('webhook abandoned after the retry window');

      now += 48 * HOUR;
      await scans();
      expect(ep.posts).toHaveLength(r.attempts);
      expect(row(e.eventId)).toEqual(r);
    });

    it('by default still POSTs 24 h after the event (API.md: at least 24 h), and gives up after 25 h', async () => {
      const ep = await endpoint(() => 503);
      account('acc_a', ep.url);
      await start({ baseDelayMs: undefined, timeoutMs: 1_000 }); // window, base and cap delays at their defaults
      const e = event('acc_a');
      await publish(e);

      const first = await attempt(e.eventId, 1);
      expect(first.next_ms - T0).toBeGreaterThanOrEqual(500);
      expect(first.next_ms - T0).toBeLessThan(1_000);
      // The endpoint stays down for a day; the scan finds the row due.
      now = T0 + 24 * HOUR - 1_000;
      const second = await attempt(e.eventId, 2);
      expect(second.status).toBe('pending');
      now = Math.ceil(second.next_ms);
      expect(now).toBeGreaterThanOrEqual(T0 + 24 * HOUR);
      const third = await attempt(e.eventId, 3);
      expect(third.status).toBe('pending');
      expect(ep.posts[2].clockMs).toBeGreaterThanOrEqual(T0 + 24 * HOUR);

      now = T0 + 25 * HOUR;
      expect(await attempt(e.eventId, 4)).toMatchObject({ status: 'failed', attempts: 4 });
    });
  });

  describe('one slow endpoint does not hold up another account', () => {
    it('POSTs to the fast endpoint at once while the slow one holds perEndpointConcurrency requests and more wait; the slow one never sees more at once', async () => {
      const slow = await endpoint(() => 'hold');
      const fast = await endpoint(() => 204);
      account('acc_slow', slow.url);
      account('acc_fast', fast.url);
      // timeoutMs far above the wait for the fast POSTs: had they queued behind the slow ones, they would come after it.
      await start({ perEndpointConcurrency: 2, timeoutMs: 5_000 });
      const slowEvents = Array.from({ length: 6 }, () => event('acc_slow'));
      const fastEvents = Array.from({ length: 3 }, () => event('acc_fast'));

      const published = performance.now();
      await publish(...slowEvents, ...fastEvents); // one batch, slow first
      await until('3 POSTs at the fast endpoint', () => (fast.posts.length === 3 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
      expect(Math.max(...fast.posts.map((p) => p.receivedAt)) - published).toBeLessThan(1_500);
      for (const e of fastEvents) await delivered(e.eventId);
      await until('2 requests held at the slow endpoint', () => (slow.open() === 2 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
      await scans();
      expect(slow.posts).toHaveLength(2);
      expect(slow.open()).toBe(2);
      expect(slow.connections).toBe(2);
      expect(slowEvents.map((e) => row(e.eventId)!.status)).toEqual(Array(6).fill('pending'));
      expect(slowEvents.map((e) => row(e.eventId)!.attempts)).toEqual(Array(6).fill(0));

      // The slow endpoint answers at last, each request after a while: the queue drains two at a time.
      slow.plan = () => ({ status: 204, afterMs: 15 });
      slow.release(204);
      for (const e of slowEvents) await delivered(e.eventId);
      expect(new Set(slow.posts.map((p) => JSON.parse(p.body).event_id))).toEqual(new Set(slowEvents.map((e) => e.eventId)));
      expect(slow.posts).toHaveLength(6);
      expect(slow.maxOpen).toBe(2);
      expect(slow.connections).toBeLessThanOrEqual(2);
      expect(fast.maxOpen).toBeLessThanOrEqual(2);
    });

    // Found by an SRE audit (2026-11-26, ninth session): rows in memory were capped over all endpoints
    // only, so one slow endpoint's backlog could fill the cap, and every other account's new webhooks
    // then waited in the table, unscanned, until it drained. Each endpoint now has a cap of its own.
    it('sends another account\'s webhook at once while a slow endpoint has more rows waiting than the sender holds in memory', async () => {
      const slow = await endpoint(() => 'hold');
      const fast = await endpoint(() => 204);
      account('acc_slow', slow.url);
      account('acc_fast', fast.url);
      await start({ perEndpointConcurrency: 2, timeoutMs: 5_000, maxQueued: 20, maxQueuedPerEndpoint: 5 });
      const slowEvents = Array.from({ length: 30 }, () => event('acc_slow'));
      await publish(...slowEvents);
      await until('2 requests held at the slow endpoint', () => (slow.open() === 2 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
      const e = event('acc_fast');
      const published = performance.now();
      await publish(e);
      await delivered(e.eventId);
      expect(fast.posts[0]!.receivedAt - published).toBeLessThan(1_000);
      // The slow endpoint's rows all wait, durable, for its slots.
      expect(slowEvents.map((x) => row(x.eventId)!.status)).toEqual(Array(30).fill('pending'));
      slow.plan = () => 204;
      slow.release(204);
      for (const x of slowEvents) await delivered(x.eventId);
      expect(slow.maxOpen).toBe(2);
    });

    // Found by this test (2026-11-26): the scan took the first SCAN_ROWS due rows by next_ms, so once
    // one endpoint had that many waiting for its slots, every scan returned only those and other
    // endpoints' retries starved until the backlog drained. Scans now page through the due rows.
    it(`retries another endpoint's failed POST while the slow one has ${SCAN_ROWS} due rows waiting`, async () => {
      const slow = await endpoint(() => 'hold');
      const fast = await endpoint((n) => (n === 0 ? 500 : 204));
      account('acc_slow', slow.url);
      account('acc_fast', fast.url);
      await start({ perEndpointConcurrency: 2, timeoutMs: 5_000, baseDelayMs: 100 });
      await publish(...Array.from({ length: SCAN_ROWS }, () => event('acc_slow')));
      const e = event('acc_fast');
      await publish(e);

      const first = await attempt(e.eventId, 1);
      expect(first.last_code).toBe(500);
      now = T0 + 1_000;
      const retried = await until(
        () => `the fast endpoint's retry; its row, due since ${now - first.next_ms} ms: ${JSON.stringify(row(e.eventId))}`,
        () => (row(e.eventId)?.status === 'delivered' ? row(e.eventId) : undefined),
        { timeoutMs: 2_000, everyMs: 5 },
      );
      expect(retried).toMatchObject({ attempts: 2, last_code: 204 });
    });
  });

  describe('duplicates', () => {
    it('makes one row and one POST of an event published twice, in one batch, again after delivery, or again while in flight', async () => {
      const ep = await endpoint((n) => (n === 1 ? 'hold' : 204));
      account('acc_a', ep.url);
      const sender = await start();
      const lagZero = () =>
        until('the consumer to catch up', async () => ((await sender.consumer.lag()) === 0 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
      const twice = event('acc_a');
      await publish(twice, twice);
      await delivered(twice.eventId);
      await publish(twice);
      await lagZero();
      await scans();
      expect(ep.posts).toHaveLength(1);

      const inFlight = event('acc_a');
      await publish(inFlight);
      await until('the second event held', () => (ep.open() === 1 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
      await publish(inFlight);
      await lagZero();
      await scans();
      ep.release(204);
      await delivered(inFlight.eventId);
      await scans();

      expect(ep.posts.map((p) => JSON.parse(p.body).event_id)).toEqual([twice.eventId, inFlight.eventId]);
      expect(rowCount()).toBe(2);
      expect(row(twice.eventId)!.attempts).toBe(1);
      expect(row(inFlight.eventId)!.attempts).toBe(1);
    });
  });

  describe('stop and start again', () => {
    it('stop() waits for the POST in flight, leaves undelivered rows pending and no handle open; the next start sends them', async () => {
      const a = await endpoint((n) => (n === 0 ? 'hold' : 204));
      const b = await endpoint((n) => (n === 0 ? 500 : 204));
      account('acc_a', a.url);
      account('acc_b', b.url);
      const handles = () => {
        const info = process.getActiveResourcesInfo();
        return { sockets: info.filter((r) => r === 'TCPSocketWrap').length, timers: info.filter((r) => r === 'Timeout').length };
      };
      const before = handles();
      const first = await start({ perEndpointConcurrency: 1, timeoutMs: 10_000 });
      const [e1, e2, e3] = [event('acc_a'), event('acc_a'), event('acc_a')];
      const e4 = event('acc_b');
      await publish(e1, e2, e3, e4);
      await until('e1 held', () => (a.open() === 1 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
      const failedOnce = await attempt(e4.eventId, 1);

      let stopped = false;
      const stopping = first.stop().then(() => (stopped = true));
      await new Promise((r) => setTimeout(r, 5 * POLL_MS));
      expect(stopped).toBe(false);
      a.release(204);
      await stopping;

      expect(row(e1.eventId)).toMatchObject({ status: 'delivered', attempts: 1 });
      expect(row(e2.eventId)).toMatchObject({ status: 'pending', attempts: 0 });
      expect(row(e3.eventId)).toMatchObject({ status: 'pending', attempts: 0 });
      expect(row(e4.eventId)).toEqual(failedOnce);
      expect(a.posts).toHaveLength(1);
      // Nothing scans, times or connects any more.
      const reads = clockReads;
      await until('the sockets and timers of the sender to go', () => {
        const h = handles();
        return h.sockets <= before.sockets && h.timers <= before.timers ? true : undefined;
      }, { timeoutMs: 3_000, everyMs: 5 });
      await new Promise((r) => setTimeout(r, 5 * POLL_MS));
      expect(clockReads).toBe(reads);
      expect(a.posts).toHaveLength(1);

      // A new process on the same file.
      await bus.close();
      db.close();
      db = openDb();
      bus = openBus(db);
      now = Math.ceil(failedOnce.next_ms);
      await start({ perEndpointConcurrency: 1 });
      await delivered(e2.eventId);
      await delivered(e3.eventId);
      expect(await delivered(e4.eventId)).toMatchObject({ attempts: 2 });
      await scans();
      // e2 and e3 came due at the same moment: either may go first.
      const sent = a.posts.map((p) => JSON.parse(p.body).event_id as string);
      expect(sent[0]).toBe(e1.eventId);
      expect(sent.slice(1).sort()).toEqual([e2.eventId, e3.eventId].sort());
      expect(b.posts).toHaveLength(2);
    });
  });

  describe('endpoints must be public addresses unless allowed (signup is open to anyone)', () => {
    it('refuses a loopback endpoint before connecting, records why, and retries it like any failed attempt', async () => {
      const ep = await endpoint(() => 204);
      account('acc_a', ep.url);
      const viaName = event('acc_a', { type: 'otp.routed' });
      const literal = event('acc_a');
      // A per-send URL naming localhost: refused by name before any lookup.
      await publish(literal, { kind: 'target', otpId: viaName.otpId, accountId: 'acc_a', url: ep.url.replace('127.0.0.1', 'localhost') }, viaName);
      await start({ privateAddresses: 'deny' });
      await attempt(literal.eventId, 1);
      await attempt(viaName.eventId, 1);
      await scans();
      expect(ep.posts).toHaveLength(0);
      expect(ep.connections).toBe(0);
      expect(row(literal.eventId)).toMatchObject({ status: 'pending', attempts: 1, last_code: null, last_error: expect.stringMatching(/must be a public address, not 127\.0\.0\.1/) });
      expect(row(viaName.eventId)!.last_error).toMatch(/public address/);
      expect(outcomes).toEqual(['refused', 'refused']);
      // Logged like other failures, once a minute per account at most: a free account must not be able to fill the log.
      expect(logs.filter((l) => l.includes('webhook endpoint refused')).map((l) => JSON.parse(l).accountId)).toEqual(['acc_a']);
    });
  });

});
