/**
 * Webhooks. The consumer turns each status change into a durable delivery row
 * (deduplicated by event id) and commits; the sender posts due rows, signed,
 * with exponential backoff and jitter for at least 24 h, and at most a few
 * requests in flight per endpoint so one slow customer cannot hold up others.
 */
import { forEachKeyInOrder, TOPICS, type Consumer } from '#bus';
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

const STATUS_BY_TYPE = { 'otp.routed': 'routed', 'otp.delivered': 'delivered', 'otp.refunded': 'refunded' } as const;

export async function startWebhooks(deps: WorkerDeps, directory: WebhookDirectory, options: WebhookOptions = {}) {
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
  const due = db.prepare<[number, number], Row>(
    `SELECT event_id, url, account_id, body, attempts, created_ms FROM webhook_deliveries WHERE status = 'pending' AND next_ms <= ? ORDER BY next_ms LIMIT ?`,
  );
  const done = db.prepare(`UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_code = ?, delivered_ms = ? WHERE event_id = ?`);
  const retry = db.prepare(`UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_code = ?, last_error = ?, next_ms = ? WHERE event_id = ?`);
  const backlog = db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'`);

  const inFlight = new Map<string, number>();
  const sending = new Set<string>();
  let wake: (() => void) | undefined;

  const consumer: Consumer = await deps.bus.consume<unknown>('nexo-webhooks', TOPICS.webhooks, (batch) =>
    forEachKeyInOrder(batch, async (msg) => {
      const m = WebhookMessage.parse(msg.value);
      if (m.kind === 'target') {
        putTarget.run(m.otpId, m.url);
        return;
      }
      const configured = directory.accountWebhook(m.accountId);
      const url = target.get(m.otpId)?.url ?? configured?.url;
      if (!url) return;
      const facts = directory.otpFacts(m.otpId);
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
      insert.run(m.eventId, m.otpId, m.accountId, m.type, url, body, clock().getTime(), clock().getTime());
      wake?.();
    }),
  );

  async function deliver(row: Row): Promise<void> {
    const origin = new URL(row.url).origin;
    const configured = directory.accountWebhook(row.account_id);
    const now = clock().getTime();
    let code: number | null = null;
    let error: string | null = null;
    try {
      if (!configured) throw new Error('no webhook secret: PUT /api/v1/webhook first');
      const secret = cipher.open(configured.secret);
      const res = await fetch(row.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signWebhook(secret, row.body, Math.floor(now / 1000)), 'user-agent': 'nexo-route-webhooks/1' },
        body: row.body,
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'manual',
      });
      code = res.status;
      await res.body?.cancel();
      if (res.ok) {
        done.run(code, clock().getTime(), row.event_id);
        deps.metrics?.webhookAttempt?.('success');
        return;
      }
      error = `http ${code}`;
      deps.metrics?.webhookAttempt?.(code >= 500 ? 'http_5xx' : 'http_4xx');
    } catch (e) {
      const timedOut = e instanceof Error && e.name === 'TimeoutError';
      error = e instanceof Error ? (timedOut ? 'timeout' : e.message.slice(0, 200)) : 'error';
      deps.metrics?.webhookAttempt?.(timedOut ? 'timeout' : 'network');
    } finally {
      inFlight.set(origin, (inFlight.get(origin) ?? 1) - 1);
      sending.delete(row.event_id);
      wake?.();
    }
    const attempts = row.attempts + 1;
    // Exponential backoff with full jitter, capped; stops once past the retry window.
    const delay = Math.min(maxDelay, baseDelay * 2 ** Math.min(attempts - 1, 30)) * (0.5 + Math.random() / 2);
    const giveUp = now + delay - row.created_ms > retryFor;
    retry.run(giveUp ? 'failed' : 'pending', code, error, now + delay, row.event_id);
    if (giveUp) logger.warn({ eventId: row.event_id, attempts }, 'webhook abandoned after the retry window');
  }

  let running = true;
  const loop = (async () => {
    while (running) {
      const rows = due.all(clock().getTime(), 200);
      for (const row of rows) {
        if (sending.has(row.event_id)) continue;
        const origin = new URL(row.url).origin;
        if ((inFlight.get(origin) ?? 0) >= perEndpoint) continue;
        inFlight.set(origin, (inFlight.get(origin) ?? 0) + 1);
        sending.add(row.event_id);
        void deliver(row).catch((error: unknown) => logger.error({ err: error }, 'webhook delivery crashed'));
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, options.pollMs ?? 250);
        wake = () => {
          clearTimeout(t);
          wake = undefined;
          resolve();
        };
      });
    }
  })();

  return {
    consumer,
    backlog: () => backlog.get()!.n,
    stop: async () => {
      running = false;
      wake?.();
      await consumer.stop();
      await loop;
      while (sending.size > 0) await new Promise((r) => setTimeout(r, 20));
    },
  };
}
