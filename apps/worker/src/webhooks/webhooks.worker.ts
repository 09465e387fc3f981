/**
 * Webhooks. The consumer turns each status change into a durable delivery row
 * (deduplicated by event id) and commits; the sender posts due rows, signed,
 * with exponential backoff and jitter for at least 24 h, and at most a few
 * requests in flight per endpoint so one slow customer cannot hold up others.
 */
import http from 'node:http';
import https from 'node:https';
import { urlToHttpOptions } from 'node:url';
import { type ConsumedMessage, InProcessMessageBus, TOPICS, type Consumer } from '#bus';
import { formatUsd } from '#domain';
import { WebhookMessage } from '../messages.js';
import type { WorkerDeps } from '../worker.deps.js';
import { SIGNATURE_HEADER, signWebhook } from './signature.js';

export interface WebhookDirectory {
  /** The account's configured URL and its sealed secret. */
  accountWebhook(accountId: string): { url: string; secret: string } | undefined;
  /** Carrier, channel and status of an OTP, for the payload. */
  otpFacts(otpId: string): { carrier: string; channel: string } | undefined;
}

export interface WebhookOptions {
  perEndpointConcurrency?: number;
  timeoutMs?: number;
  /** First retry delay; doubles per attempt up to `maxDelayMs`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Retries stop this long after the event (API.md: at least 24 h). */
  retryForMs?: number;
  pollMs?: number;
}

interface Row {
  event_id: string;
  url: string;
  account_id: string;
  body: string;
  attempts: number;
  created_ms: number;
}

/** Longest stretch spent starting requests before the event loop gets a turn. */
const PUMP_SLICE_MS = 4;

/** The sender's consumer group on the webhooks topic. */
const GROUP = 'nexo-webhooks';

/** Due rows taken per scan of the table. */
const SCAN_ROWS = 1_000;

/** Rows held in memory for sending; beyond this, new ones wait in the table for the scan. */
const MAX_QUEUED = 10_000;

type Endpoint = { origin: string; protocol: string; request: http.RequestOptions; error?: undefined } | { origin: string; error: Error; protocol?: undefined; request?: undefined };

const STATUS_BY_TYPE = { 'otp.routed': 'routed', 'otp.delivered': 'delivered', 'otp.refunded': 'refunded' } as const;

/** What the sender needs: no event store, no carriers (it can run on a thread of its own). */
export type WebhookDeps = Pick<WorkerDeps, 'db' | 'bus' | 'cipher' | 'logger' | 'clock' | 'metrics'>;

/**
 * Before the webhook thread's relay handed pages straight to the sender, it published them into a
 * bus table in the thread's file. Messages an older version left there unconsumed are not lost:
 * the relay's checkpoint is dropped, so it relays the log again, and the delivery rows (one per
 * event id) turn every repeat into a no-op. Then the table goes. True when the relay was rewound.
 */
export function retireBusTable(db: WorkerDeps['db'], relayName: string): boolean {
  return db.transaction(() => {
    const left = InProcessMessageBus.retireTopic(db, TOPICS.webhooks, GROUP) ?? 0;
    if (left > 0) db.prepare('DELETE FROM relay_checkpoints WHERE name = ?').run(relayName);
    return left > 0;
  })();
}

export async function startWebhooks(deps: WebhookDeps, directory: WebhookDirectory, options: WebhookOptions = {}) {
  const { db, clock, logger, cipher } = deps;
  const perEndpoint = options.perEndpointConcurrency ?? 4;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const baseDelay = options.baseDelayMs ?? 1_000;
  const maxDelay = options.maxDelayMs ?? 3_600_000;
  const retryFor = options.retryForMs ?? 25 * 3600 * 1000;
  db.exec(`
    CREATE TABLE IF NOT EXISTS webhook_targets (otp_id TEXT PRIMARY KEY, url TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS webhook_deliveries (
      event_id TEXT PRIMARY KEY, otp_id TEXT NOT NULL, account_id TEXT NOT NULL, type TEXT NOT NULL, url TEXT NOT NULL,
      body TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, next_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL,
      last_code INTEGER, last_error TEXT, delivered_ms INTEGER);
    CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_ms) WHERE status = 'pending';
    CREATE INDEX IF NOT EXISTS webhook_deliveries_otp ON webhook_deliveries (otp_id);`);
  const putTarget = db.prepare('INSERT OR REPLACE INTO webhook_targets (otp_id, url) VALUES (?, ?)');
  const target = db.prepare<[string], { url: string }>('SELECT url FROM webhook_targets WHERE otp_id = ?');
  const insert = db.prepare(`INSERT OR IGNORE INTO webhook_deliveries (event_id, otp_id, account_id, type, url, body, status, attempts, next_ms, created_ms)
    VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)`);
  // A literal LIMIT: a bound one makes SQLite prepare the statement again at every scan.
  const due = db.prepare<[number], Row>(
    `SELECT event_id, url, account_id, body, attempts, created_ms FROM webhook_deliveries WHERE status = 'pending' AND next_ms <= ? ORDER BY next_ms LIMIT ${SCAN_ROWS}`,
  );
  const done = db.prepare(`UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_code = ?, delivered_ms = ? WHERE event_id = ?`);
  const retry = db.prepare(`UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_code = ?, last_error = ?, next_ms = ? WHERE event_id = ?`);
  const backlog = db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'`);

  /** Per endpoint (origin): rows waiting for one of its slots. */
  const queues = new Map<string, Row[]>();
  const inFlight = new Map<string, number>();
  /** Event ids queued or being sent: a scan that sees them again leaves them alone. */
  const queued = new Set<string>();
  const agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: perEndpoint }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: perEndpoint }),
  };
  /** Opened secrets by their sealed form: one AES-GCM open per account, not per POST. */
  const secrets = new Map<string, string>();
  /** Parsed webhook URLs: one parse per endpoint, not two per POST. */
  const endpoints = new Map<string, Endpoint>();
  function endpoint(url: string): Endpoint {
    let e = endpoints.get(url);
    if (e === undefined) {
      try {
        const parsed = new URL(url);
        e = { origin: parsed.origin, protocol: parsed.protocol, request: urlToHttpOptions(parsed) };
      } catch (error) {
        e = { origin: url, error: error instanceof Error ? error : new Error(String(error)) };
      }
      if (endpoints.size >= 10_000) endpoints.clear();
      endpoints.set(url, e);
    }
    return e;
  }
  let running = true;

  function enqueue(row: Row): void {
    if (queued.has(row.event_id) || unrecorded.has(row.event_id)) return;
    const { origin } = endpoint(row.url);
    queued.add(row.event_id);
    const q = queues.get(origin);
    if (q) q.push(row);
    else queues.set(origin, [row]);
    toPump.add(origin);
    if (!pumpScheduled) {
      pumpScheduled = true;
      setImmediate(pumpSome);
    }
  }

  /**
   * Endpoints with new rows are pumped a few milliseconds' worth per turn of the event loop: a
   * batch of hundreds of webhooks would otherwise start every request in one long task, and the
   * answers (and the next batch) would wait behind it.
   */
  const toPump = new Set<string>();
  let pumpScheduled = false;
  function pumpSome(): void {
    const started = performance.now();
    for (const origin of toPump) {
      toPump.delete(origin);
      pump(origin);
      if (performance.now() - started > PUMP_SLICE_MS) break;
    }
    pumpScheduled = toPump.size > 0;
    if (pumpScheduled) setImmediate(pumpSome);
  }

  function pump(origin: string): void {
    const q = queues.get(origin);
    while (running && q && q.length > 0 && (inFlight.get(origin) ?? 0) < perEndpoint) {
      const row = q.shift()!;
      inFlight.set(origin, (inFlight.get(origin) ?? 0) + 1);
      void deliver(row)
        .catch((error: unknown) => logger.error({ err: error }, 'webhook delivery crashed'))
        .finally(() => {
          inFlight.set(origin, (inFlight.get(origin) ?? 1) - 1);
          queued.delete(row.event_id);
          pump(origin);
        });
    }
    if (q && q.length === 0 && (inFlight.get(origin) ?? 0) === 0) queues.delete(origin);
  }

  /**
   * Successes are recorded a few milliseconds later, together: one commit for many POSTs. A crash
   * in between sends those again, which the at-least-once contract (dedupe by event_id) allows.
   */
  const delivered: { eventId: string; code: number; at: number }[] = [];
  /** Sent and answered 2xx, not yet recorded: a scan in between must not send them again. */
  const unrecorded = new Set<string>();
  const recordDone = db.transaction((rows: typeof delivered) => {
    for (const d of rows) done.run(d.code, d.at, d.eventId);
  });
  let flushTimer: NodeJS.Timeout | undefined;
  function flushDone(): void {
    flushTimer = undefined;
    if (delivered.length === 0 || !db.open) return;
    try {
      recordDone(delivered);
      for (const d of delivered) unrecorded.delete(d.eventId);
      delivered.length = 0;
    } catch (error) {
      logger.error({ err: error }, 'recording delivered webhooks failed; retrying');
      flushTimer = setTimeout(flushDone, 500);
    }
  }
  function markDone(eventId: string, code: number): void {
    delivered.push({ eventId, code, at: clock().getTime() });
    unrecorded.add(eventId);
    flushTimer ??= setTimeout(flushDone, 10);
  }

  /** One message; returns a new delivery row to send, if it made one. */
  function record(value: unknown): Row | undefined {
    const m = WebhookMessage.parse(value);
    if (m.kind === 'target') {
      putTarget.run(m.otpId, m.url);
      return undefined;
    }
    const configured = directory.accountWebhook(m.accountId);
    const url = target.get(m.otpId)?.url ?? configured?.url;
    if (!url) return undefined;
    const facts = m.carrier && m.channel ? { carrier: m.carrier, channel: m.channel } : directory.otpFacts(m.otpId);
    const extra: Record<string, string> = { ...m.extra };
    if (extra.amount !== undefined) extra.amount = formatUsd(BigInt(extra.amount));
    const body = JSON.stringify({
      event_id: m.eventId,
      type: m.type,
      id: m.otpId,
      status: STATUS_BY_TYPE[m.type],
      carrier: facts?.carrier,
      channel: facts?.channel,
      at: m.at,
      ...extra,
    });
    const now = clock().getTime();
    if (insert.run(m.eventId, m.otpId, m.accountId, m.type, url, body, now, now).changes === 0) return undefined;
    return { event_id: m.eventId, url, account_id: m.accountId, body, attempts: 0, created_ms: now };
  }
  // The whole batch in one transaction: in publish order, so a per-send target precedes its OTP's
  // events (same key), and one commit instead of one per event.
  const recordBatch = db.transaction((batch: ConsumedMessage[]) => batch.map((msg) => record(msg.value)).filter((r) => r !== undefined));

  const consumer: Consumer = await deps.bus.consume<unknown>(GROUP, TOPICS.webhooks, async (batch) => {
    for (const row of recordBatch(batch)) if (queued.size < MAX_QUEUED) enqueue(row);
  });

  function open(sealed: string): string {
    let secret = secrets.get(sealed);
    if (secret === undefined) {
      secret = cipher.open(sealed);
      if (secrets.size >= 10_000) secrets.clear();
      secrets.set(sealed, secret);
    }
    return secret;
  }

  /** One POST; node:http with keep-alive sockets per endpoint, which costs far less per request than fetch. */
  function post(url: string, body: string, signature: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const target = endpoint(url);
      if (target.error) return reject(target.error);
      const agent = agents[target.protocol as keyof typeof agents];
      if (!agent) return reject(new Error(`unsupported protocol ${target.protocol}`));
      const req = (target.protocol === 'https:' ? https : http).request(
        {
          ...target.request,
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), [SIGNATURE_HEADER]: signature, 'user-agent': 'nexo-route-webhooks/1' },
        },
        (res) => {
          res.on('error', reject);
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.resume();
        },
      );
      const timer = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { name: 'TimeoutError' })), timeoutMs);
      req.on('close', () => clearTimeout(timer));
      req.on('error', reject);
      req.end(body);
    });
  }

  async function deliver(row: Row): Promise<void> {
    const configured = directory.accountWebhook(row.account_id);
    const now = clock().getTime();
    let code: number | null = null;
    let error: string | null = null;
    try {
      if (!configured) throw new Error('no webhook secret: PUT /api/v1/webhook first');
      code = await post(row.url, row.body, signWebhook(open(configured.secret), row.body, Math.floor(now / 1000)));
      if (code >= 200 && code < 300) {
        markDone(row.event_id, code);
        deps.metrics?.webhookAttempt?.('success');
        return;
      }
      error = `http ${code}`;
      deps.metrics?.webhookAttempt?.(code >= 500 ? 'http_5xx' : 'http_4xx');
    } catch (e) {
      const timedOut = e instanceof Error && e.name === 'TimeoutError';
      error = e instanceof Error ? (timedOut ? 'timeout' : e.message.slice(0, 200)) : 'error';
      deps.metrics?.webhookAttempt?.(timedOut ? 'timeout' : 'network');
    }
    const attempts = row.attempts + 1;
    // Exponential backoff with full jitter, capped; stops once past the retry window.
    const delay = Math.min(maxDelay, baseDelay * 2 ** Math.min(attempts - 1, 30)) * (0.5 + Math.random() / 2);
    const giveUp = now + delay - row.created_ms > retryFor;
    retry.run(giveUp ? 'failed' : 'pending', code, error, now + delay, row.event_id);
    if (giveUp) logger.warn({ eventId: row.event_id, attempts }, 'webhook abandoned after the retry window');
  }

  // New events go straight to their endpoint's queue from the consumer; the scan brings back retries
  // that came due and whatever the last run left pending.
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (running) {
      try {
        if (queued.size < MAX_QUEUED) for (const row of due.all(clock().getTime())) enqueue(row);
      } catch (error) {
        if (!db.open) return;
        logger.error({ err: error }, 'webhook scan failed');
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, options.pollMs ?? 250);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  })();

  return {
    consumer,
    backlog: () => backlog.get()!.n,
    stop: async () => {
      await consumer.stop();
      running = false;
      wake?.();
      await loop;
      for (const q of queues.values()) for (const row of q.splice(0)) queued.delete(row.event_id);
      while ([...inFlight.values()].some((n) => n > 0)) await new Promise((r) => setTimeout(r, 20));
      clearTimeout(flushTimer);
      flushDone();
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}
