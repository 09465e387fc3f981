/**
 * The webhook sender in its post-first mode (the webhook thread's): messages come straight from
 * the relay (`DirectMessageBus`) with their log positions, a new event is POSTed before anything is
 * written, and `UnsettledEvents` (which holds the relay's checkpoint back) says what is not durable
 * yet. Customer endpoints are real HTTP servers on loopback; the clock is the real one.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DirectMessageBus, TOPICS } from '#bus';
import { createLogger, linesInto } from '#observability';
import { AesGcmCipher, newId, newWebhookSecret } from '#security';
import { until } from '#testing';
import type { WebhookMessage } from '../messages.js';
import { verifyWebhook, SIGNATURE_HEADER } from './signature.js';
import { UnsettledEvents } from './unsettled-events.js';
import { startWebhooks, type WebhookOptions } from './webhooks.worker.js';

type WebhookEvent = Extract<WebhookMessage, { kind: 'event' }>;

interface Row {
  event_id: string;
  status: string;
  attempts: number;
  last_code: number | null;
  body: string;
}

/** A loopback endpoint answering each request by `plan` (a status, or held until `release`). */
async function endpoint(plan: (n: number) => number | 'hold') {
  const held: ServerResponse[] = [];
  const posts: { body: string; signature: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const answer = plan(posts.length);
      posts.push({ body, signature: String(req.headers[SIGNATURE_HEADER.toLowerCase()] ?? '') });
      if (answer === 'hold') held.push(res);
      else res.writeHead(answer).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    posts,
    held: () => held.length,
    release(status: number) {
      for (const res of held.splice(0)) if (!res.destroyed) res.writeHead(status).end();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('webhook sender, post-first (the webhook thread): a new event is POSTed before anything is written', () => {
  let dir: string;
  let db: Database.Database;
  let bus: DirectMessageBus;
  let unsettled: UnsettledEvents;
  let settlements: number;
  const cipher = new AesGcmCipher({ k1: randomBytes(32) }, 'k1');
  const logs: string[] = [];
  const logger = createLogger({ level: 'warn', destination: linesInto(logs) });
  const accounts = new Map<string, { url: string; secret: string }>();
  const closers: (() => Promise<void>)[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-post-first-'));
    db = new Database(join(dir, 'webhooks.db'));
    db.pragma('journal_mode = WAL');
    bus = new DirectMessageBus();
    settlements = 0;
    unsettled = new UnsettledEvents(() => settlements++);
    accounts.clear();
    logs.length = 0;
  });

  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await bus.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(options: WebhookOptions = {}) {
    const sender = await startWebhooks(
      { db, bus, cipher, logger, clock: () => new Date() },
      {
        accountWebhook: (id) => {
          const a = accounts.get(id);
          return a && { url: a.url, secret: cipher.seal(a.secret), position: 0 };
        },
        otpFacts: () => undefined,
      },
      { pollMs: 10, timeoutMs: 2_000, baseDelayMs: 20, privateAddresses: 'allow', postFirst: unsettled, ...options },
    );
    let stopping: Promise<void> | undefined;
    const stop = () => (stopping ??= sender.stop());
    closers.push(stop);
    return { ...sender, stop };
  }

  async function customer(accountId: string, plan: (n: number) => number | 'hold') {
    const ep = await endpoint(plan);
    closers.push(ep.close);
    const secret = newWebhookSecret();
    accounts.set(accountId, { url: ep.url, secret });
    return { ...ep, secret };
  }

  let position = 100;
  function event(accountId: string, fields: Partial<WebhookEvent> = {}): WebhookEvent {
    position += 3;
    return {
      kind: 'event',
      eventId: `evt_${position}`,
      type: 'otp.delivered',
      otpId: newId('otp', Date.now()),
      accountId,
      at: new Date().toISOString(),
      carrier: 'viettel',
      channel: 'sms',
      extra: {},
      position,
      ...fields,
    };
  }
  const publish = (...messages: WebhookMessage[]) => bus.publish(TOPICS.webhooks, messages.map((m) => ({ key: m.accountId, value: m })));
  const rows = () => db.prepare<[], Row>('SELECT event_id, status, attempts, last_code, body FROM webhook_deliveries ORDER BY event_id').all();
  const settled = () => until('every event settled', () => (unsettled.size === 0 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });

  it('writes no row for an event whose POST succeeds; holds it unsettled, at its log position, while the POST is in flight', async () => {
    const ep = await customer('acc_a', () => 'hold');
    await start();
    const e = event('acc_a');
    await publish(e);
    await until('the POST', () => (ep.held() === 1 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
    expect(unsettled.first()).toBe(e.position);
    expect(rows()).toEqual([]);

    ep.release(204);
    await settled();
    expect(settlements).toBe(1);
    expect(rows()).toEqual([]);
    expect(ep.posts).toHaveLength(1);
    const body = JSON.parse(ep.posts[0].body) as Record<string, unknown>;
    expect(body).toMatchObject({ event_id: e.eventId, id: e.otpId, type: 'otp.delivered', status: 'delivered', carrier: 'viettel', channel: 'sms' });
    expect(verifyWebhook(accounts.get('acc_a')!.secret, ep.posts[0].body, ep.posts[0].signature, Math.floor(Date.now() / 1000))).toBe(true);
  });

  it('writes the retry row of a failed first attempt (attempt 1, its code) before settling the event; the retry delivers it', async () => {
    const ep = await customer('acc_a', (n) => (n === 0 ? 503 : 200));
    await start();
    const e = event('acc_a');
    await publish(e);
    await settled();
    // Settled only once its row was durable.
    expect(rows()).toEqual([expect.objectContaining({ event_id: e.eventId, status: 'pending', attempts: 1, last_code: 503 })]);
    await until('the retry delivered', () => (rows()[0]?.status === 'delivered' ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
    expect(rows()[0]).toMatchObject({ attempts: 2, last_code: 200 });
    expect(ep.posts.map((p) => p.body)).toEqual([ep.posts[0].body, ep.posts[0].body]);
  });

  it('writes first, as without post-first, the events that would wait for their endpoint; every event is sent once', async () => {
    const ep = await customer('acc_a', () => 'hold');
    await start({ perEndpointConcurrency: 1 });
    const events = [event('acc_a'), event('acc_a'), event('acc_a'), event('acc_a')];
    await publish(...events);
    // One in flight and one queued behind it are posted first; the two after them are written first.
    expect(unsettled.size).toBe(2);
    expect(unsettled.first()).toBe(events[0].position);
    expect(rows().map((r) => [r.event_id, r.status])).toEqual([
      [events[2].eventId, 'pending'],
      [events[3].eventId, 'pending'],
    ]);
    for (let sent = 1; sent <= 4; sent++) {
      await until(`POST ${sent}`, () => (ep.held() === 1 && ep.posts.length === sent ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
      ep.release(200);
    }
    await settled();
    await until('the written rows delivered', () => (rows().every((r) => r.status === 'delivered') ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
    expect(ep.posts.map((p) => (JSON.parse(p.body) as { event_id: string }).event_id).sort()).toEqual(events.map((e) => e.eventId).sort());
  });

  it('sends an event relayed again once: while in flight, after its success, after its failure was written', async () => {
    const ep = await customer('acc_a', (n) => (n === 0 ? 'hold' : n === 1 ? 500 : 200));
    await start({ baseDelayMs: 60_000 });
    const a = event('acc_a');
    await publish(a);
    await until('the POST', () => (ep.held() === 1 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
    await publish(a);
    ep.release(200);
    await settled();
    await publish(a);

    const b = event('acc_a');
    await publish(b);
    await settled();
    expect(rows()).toEqual([expect.objectContaining({ event_id: b.eventId, status: 'pending', attempts: 1, last_code: 500 })]);
    // Its row is the scan's now (due in a minute).
    await publish(b);
    await new Promise((r) => setTimeout(r, 50));
    expect(ep.posts.map((p) => (JSON.parse(p.body) as { event_id: string }).event_id)).toEqual([a.eventId, b.eventId]);
    expect(unsettled.size).toBe(0);
  });

  it('an event relayed again after a restart, with a retry row from its first attempt, is left to that row', async () => {
    const ep = await customer('acc_a', (n) => (n === 0 ? 500 : 200));
    const first = await start({ baseDelayMs: 60_000 });
    const e = event('acc_a');
    await publish(e);
    await settled();
    await first.stop();
    await bus.close();
    bus = new DirectMessageBus();
    await start({ baseDelayMs: 60_000 });
    await publish(e);
    await new Promise((r) => setTimeout(r, 50));
    expect(ep.posts).toHaveLength(1);
    expect(unsettled.size).toBe(0);
    expect(rows()).toEqual([expect.objectContaining({ event_id: e.eventId, status: 'pending', attempts: 1 })]);
  });

  it('stop() finishes the POST in flight (settled) and leaves a queued event unsettled, for the relay to bring again', async () => {
    const ep = await customer('acc_a', () => 'hold');
    const sender = await start({ perEndpointConcurrency: 1 });
    const [a, b] = [event('acc_a'), event('acc_a')];
    await publish(a, b);
    await until('the first POST', () => (ep.held() === 1 ? true : undefined), { timeoutMs: 3_000, everyMs: 5 });
    const stopped = sender.stop();
    ep.release(200);
    await stopped;
    expect(ep.posts).toHaveLength(1);
    expect(unsettled.has(a.eventId)).toBe(false);
    expect(unsettled.has(b.eventId)).toBe(true);
    expect(unsettled.first()).toBe(b.position);
    expect(rows()).toEqual([]);
  });
});
