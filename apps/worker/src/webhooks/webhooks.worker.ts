/**
 * Webhooks. The consumer turns each status change into a durable delivery row
 * (deduplicated by event id) and commits; the sender posts due rows, signed,
 * with exponential backoff and jitter for at least 24 h, and at most a few
 * requests in flight per endpoint so one slow customer cannot hold up others.
 * Fed by a relay of its own (the webhook thread), it posts a new event first
 * and writes a row only when the POST fails or must wait (`postFirst`).
 */
import { Agent, errors } from 'undici';
import { type ConsumedMessage, InProcessMessageBus, TOPICS, type Consumer } from '#bus';
import { trimOldest } from '#collections';
import { formatUsd } from '#domain';
import { NOT_PUBLIC, type PrivateAddressPolicy, publicOnlyLookup, webhookUrlProblem } from '#security';
import { WebhookMessage } from '../messages.js';
import type { WorkerDeps } from '../worker.deps.js';
import { type DeliveryRow, type DueCursor, openDeliveries, otpIdsBefore, SCAN_ROWS } from './deliveries.table.js';
import { SIGNATURE_HEADER, signWebhook } from './signature.js';
import type { UnsettledEvents } from './unsettled-events.js';

export interface WebhookDirectory {
  /** The account's configured URL and its sealed secret, as of the log position of its last change; an empty URL: removed. */
  accountWebhook(accountId: string): { url: string; secret: string; position: number } | undefined;
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
  /** Rows held in memory for sending, over all endpoints; beyond it new ones wait in the table for the scan (default 10,000). */
  maxQueued?: number;
  /**
   * Rows held in memory for one endpoint (default 1,000): a slow endpoint's backlog waits in the
   * table beyond it, so it can never fill `maxQueued` alone and hold every other account's webhooks.
   */
  maxQueuedPerEndpoint?: number;
  /** Delivered and failed rows are deleted once their OTP is this old; older events are not sent (default 7 days). */
  retainMs?: number;
  /**
   * `deny` (the default): endpoints must be public addresses, checked on the URL and on every
   * address DNS gives at connect time (see `#security` public-address); `allow`: development and
   * tests on one machine (`NEXO_WEBHOOK_PRIVATE_ADDRESSES`).
   */
  privateAddresses?: PrivateAddressPolicy;
  /**
   * Post first, record only what must be retried: for a sender whose messages come straight from
   * its own relay (the webhook thread). A new event whose endpoint has a free slot is POSTed with
   * no row written; it stays in `postFirst` (which holds the relay's checkpoint back) until the
   * POST succeeds, which records nothing, or fails, which writes its retry row. An event that would
   * wait for its endpoint is written first, as without this option. Saves the insert, the update
   * and a commit before each POST; a crash sends the POSTs that were in flight again.
   */
  postFirst?: UnsettledEvents;
}

/** A delivery row; `fresh`: not in the table (post-first), with what writing it would need. */
type Row = DeliveryRow & { fresh?: { position: number; type: string } };
type FreshRow = Row & { fresh: NonNullable<Row['fresh']> };
/** Events a post-first sender delivered without a row, remembered against a page relayed again (at most a page's worth is ever repeated). */
const REMEMBERED_FRESH = 10_000;
/** An account's webhook; `removedMs`: when one was last removed here (rows made until then are given up), 0 if never. */
type AccountWebhook = { url: string; secret: string; removedMs: number };
/** How long a sender trusts what it last resolved of an account's webhook before it looks again (its file and the read models). */
const ACCOUNT_RECHECK_MS = 30_000;

/** Longest stretch spent starting requests before the event loop gets a turn. */
const PUMP_SLICE_MS = 4;

/** The sender's consumer group on the webhooks topic. */
const GROUP = 'nexo-webhooks';

/** Retention passes: one per scan while there is something to delete, else this often. */
const PRUNE_EVERY_MS = 60_000;

/** A failing account's attempts are logged at most this often (see logFailure). */
const FAILURE_LOG_EVERY_MS = 60_000;


type Endpoint = { origin: string; path: string; error?: undefined } | { origin: string; error: Error; path?: undefined };

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
  const maxQueued = options.maxQueued ?? 10_000;
  const maxQueuedPerEndpoint = options.maxQueuedPerEndpoint ?? 1_000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const baseDelay = options.baseDelayMs ?? 1_000;
  const maxDelay = options.maxDelayMs ?? 3_600_000;
  const retryFor = options.retryForMs ?? 25 * 3600 * 1000;
  const retainMs = options.retainMs ?? 7 * 24 * 3600 * 1000;
  const postFirst = options.postFirst;
  /** Rows of one endpoint, in flight and queued, up to which a new event is posted first (beyond: written first, it waits). */
  const freshRoom = Math.min(2 * perEndpoint, maxQueuedPerEndpoint);
  const table = openDeliveries(db);
  if (table.migrated) logger.info('webhook deliveries moved to the table clustered by OTP id');

  /** Per endpoint (origin): rows waiting for one of its slots. */
  const queues = new Map<string, Row[]>();
  const inFlight = new Map<string, number>();
  /** Event ids queued or being sent: a scan that sees them again leaves them alone. */
  const queued = new Set<string>();
  // undici: keep-alive connections per origin, capped like the queues; less CPU per POST than
  // node:http's client (measured), and at load the webhook thread's CPU is its latency.
  const publicOnly = options.privateAddresses !== 'allow';
  const agent = new Agent({
    connections: perEndpoint,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: { timeout: timeoutMs, ...(publicOnly ? { lookup: publicOnlyLookup } : {}) },
  });
  /** Opened secrets by their sealed form: one AES-GCM open per account, not per POST. */
  const secrets = new Map<string, string>();
  /**
   * Accounts' webhooks as last resolved (`accountWebhook`), for ACCOUNT_RECHECK_MS. The relay hands
   * each `WebhookConfigured` / `WebhookRemoved` over in order with the account's status changes, and
   * `record` writes it to this file and forgets the account here, so an OTP sent right after
   * `PUT /api/v1/webhook` finds its endpoint even while the read models lag. `null` is remembered
   * too: most status changes of an account without a webhook (a customer who polls) then cost one
   * map lookup, not two reads.
   */
  const accounts = new Map<string, { webhook: AccountWebhook | null; checkedMs: number }>();
  function accountWebhook(accountId: string): AccountWebhook | undefined {
    const now = clock().getTime();
    const known = accounts.get(accountId);
    if (known !== undefined && now - known.checkedMs < ACCOUNT_RECHECK_MS) return known.webhook ?? undefined;
    // The later change wins, by log position: this file's row (relayed to this sender, maybe ahead of
    // the read models) or the read models' (a change another sender consumed while the account's
    // partition was elsewhere). A removal is an empty URL in either.
    const stored = table.account.get(accountId);
    const projected = directory.accountWebhook(accountId);
    const newest = stored !== undefined && (projected === undefined || stored.position >= projected.position) ? stored : projected;
    const webhook = newest === undefined || newest.url === '' ? null : { url: newest.url, secret: newest.secret, removedMs: stored?.removed_ms ?? 0 };
    if (accounts.size >= 10_000) accounts.clear();
    accounts.set(accountId, { webhook, checkedMs: now });
    return webhook ?? undefined;
  }
  /** Parsed webhook URLs: one parse per endpoint, not two per POST. */
  const endpoints = new Map<string, Endpoint>();
  function endpoint(url: string): Endpoint {
    let e = endpoints.get(url);
    if (e === undefined) {
      try {
        const parsed = new URL(url);
        if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`unsupported protocol ${parsed.protocol}`);
        // A literal address never reaches the lookup; a URL stored before this check existed is refused here.
        const problem = publicOnly ? webhookUrlProblem(url) : undefined;
        if (problem) throw Object.assign(new Error(`webhook URL ${problem} (NEXO_WEBHOOK_PRIVATE_ADDRESSES=deny)`), { code: NOT_PUBLIC });
        e = { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` };
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
    const q = queues.get(origin);
    // Full: the row stays pending in the table, and a later scan brings it back once there is room.
    if (q && q.length >= maxQueuedPerEndpoint) return;
    queued.add(row.event_id);
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
  const delivered: { otpId: string; eventId: string; code: number; at: number }[] = [];
  /** Post-first rows whose first attempt failed (or was given up): written together the same way, then settled. */
  const tried: { row: FreshRow; status: 'pending' | 'failed'; attempts: number; nextMs: number; code: number | null; error: string | null }[] = [];
  /** Sent and answered 2xx, or tried, not yet recorded: a scan or a repeated message in between must not send them again. */
  const unrecorded = new Set<string>();
  const recordDone = db.transaction(() => {
    for (const d of delivered) table.done.run(d.code, d.at, d.otpId, d.eventId);
    for (const { row, status, attempts, nextMs, code, error } of tried)
      table.insertTried.run(row.otp_id, row.event_id, row.account_id, row.fresh.type, row.url, row.body, status, attempts, nextMs, row.created_ms, code, error);
  });
  let flushTimer: NodeJS.Timeout | undefined;
  function flushDone(): void {
    flushTimer = undefined;
    if ((delivered.length === 0 && tried.length === 0) || !db.open) return;
    try {
      recordDone();
      for (const d of delivered) unrecorded.delete(d.eventId);
      for (const { row } of tried) {
        unrecorded.delete(row.event_id);
        postFirst?.settle(row.event_id);
      }
      delivered.length = 0;
      tried.length = 0;
    } catch (error) {
      logger.error({ err: error }, 'recording delivered webhooks failed; retrying');
      flushTimer = setTimeout(flushDone, 500);
    }
  }
  function markDone(row: Row, code: number): void {
    delivered.push({ otpId: row.otp_id, eventId: row.event_id, code, at: clock().getTime() });
    unrecorded.add(row.event_id);
    flushTimer ??= setTimeout(flushDone, 10);
  }
  /** A post-first row after its first attempt failed or was given up: written with the next flush. */
  function markTried(row: FreshRow, outcome: Omit<(typeof tried)[number], 'row'>): void {
    tried.push({ row, ...outcome });
    unrecorded.add(row.event_id);
    flushTimer ??= setTimeout(flushDone, 10);
  }
  /** Post-first events delivered with no row (see REMEMBERED_FRESH). */
  const sentFresh = new Set<string>();
  /** Whether a new event for `url` can be posted first: its endpoint has room without waiting long. */
  function hasRoom(url: string): boolean {
    const { origin } = endpoint(url);
    return queued.size < maxQueued && (inFlight.get(origin) ?? 0) + (queues.get(origin)?.length ?? 0) < freshRoom;
  }

  /** One message; returns a new delivery row to send, if it made one. */
  function record(value: unknown): Row | undefined {
    const m = WebhookMessage.parse(value);
    const now = clock().getTime();
    if (m.kind === 'target') {
      table.putTarget.run(m.otpId, m.url);
      return undefined;
    }
    if (m.kind === 'account') {
      table.putAccount.run(m.accountId, m.url, m.secret, m.position);
      accounts.delete(m.accountId);
      return undefined;
    }
    if (m.kind === 'account_removed') {
      // Rows made before this are given up when they come due (`deliver`), also once a new webhook is set.
      table.removeAccount.run(m.accountId, m.position, now);
      accounts.delete(m.accountId);
      return undefined;
    }
    // Past retention its row may be gone already: a relay replaying the log that far back must not send it again.
    if (m.otpId < otpIdsBefore(now - retainMs)) return undefined;
    // Without the account's secret nothing can be signed: a per-send URL needs one too (the send refuses it otherwise).
    const configured = accountWebhook(m.accountId);
    if (configured === undefined) return undefined;
    // Taken already and not in the table (yet): this is a page relayed again.
    if (postFirst && (queued.has(m.eventId) || unrecorded.has(m.eventId) || sentFresh.has(m.eventId))) return undefined;
    // A row made after a removal in the same millisecond still counts as after it.
    const created = Math.max(now, configured.removedMs + 1);
    const url = table.target.get(m.otpId)?.url ?? configured.url;
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
    const row: Row = { otp_id: m.otpId, event_id: m.eventId, url, account_id: m.accountId, body, attempts: 0, created_ms: created, next_ms: now };
    if (postFirst && m.position > 0 && hasRoom(url)) {
      // Relayed again after a restart, its first attempt may have left a row: that one is the scan's.
      if (table.exists.get(m.otpId, m.eventId) !== undefined) return undefined;
      row.fresh = { position: m.position, type: m.type };
      postFirst.add(m.eventId, m.position);
      enqueue(row);
      return undefined;
    }
    if (table.insert.run(m.otpId, m.eventId, m.accountId, m.type, url, body, now, created).changes === 0) return undefined;
    return row;
  }
  // The whole batch in one transaction: in publish order, so a per-send target precedes its OTP's
  // events (same key), and one commit instead of one per event.
  const recordBatch = db.transaction((batch: ConsumedMessage[]) => batch.map((msg) => record(msg.value)).filter((r) => r !== undefined));

  const consumer: Consumer = await deps.bus.consume<unknown>(GROUP, TOPICS.webhooks, async (batch) => {
    for (const row of recordBatch(batch)) if (queued.size < maxQueued) enqueue(row);
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

  /** One POST; the answer's body is read and dropped (a connection goes back to the pool only then). */
  async function post(url: string, body: string, signature: string): Promise<number> {
    const target = endpoint(url);
    if (target.error) throw target.error;
    const res = await agent.request({
      origin: target.origin,
      path: target.path,
      method: 'POST',
      headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signature, 'user-agent': 'nexo-route-webhooks/1' },
      body,
    });
    await res.body.dump();
    return res.statusCode;
  }

  /**
   * Failed attempts, refusals included, reach the log at most once a minute per account (a customer's
   * endpoint down for a day would otherwise write a line per retry of every event), each line saying
   * how many failed since the one before. They name the account and the event, never the URL or the secret.
   */
  const lastFailureLogged = new Map<string, { at: number; since: number }>();
  function logFailure(row: Row, attempts: number, error: string | null, refused: boolean): void {
    const at = clock().getTime();
    const last = lastFailureLogged.get(row.account_id);
    if (last !== undefined && at - last.at < FAILURE_LOG_EVERY_MS) {
      last.since += 1;
      return;
    }
    if (lastFailureLogged.size >= 10_000) lastFailureLogged.clear();
    lastFailureLogged.set(row.account_id, { at, since: 0 });
    // A refusal is a misconfiguration, or someone probing our network through the sender: operators should know whose.
    const message = refused ? 'webhook endpoint refused: not a public address' : 'webhook attempt failed; retried with backoff';
    logger.warn({ accountId: row.account_id, eventId: row.event_id, attempts, error, failedSinceLastLine: last?.since ?? 0 }, message);
  }

  async function deliver(row: Row): Promise<void> {
    const configured = accountWebhook(row.account_id);
    const now = clock().getTime();
    let code: number | null = null;
    let error: string | null = null;
    let refused = false;
    if (!configured || row.created_ms <= configured.removedMs) {
      // Made for a webhook removed since (DELETE /api/v1/webhook), whatever was set after: given up, not sent.
      if (row.fresh) markTried({ ...row, fresh: row.fresh }, { status: 'failed', attempts: 0, nextMs: row.next_ms, code: null, error: 'webhook removed' });
      else table.abandon.run('webhook removed', row.otp_id, row.event_id);
      return;
    }
    try {
      code = await post(row.url, row.body, signWebhook(open(configured.secret), row.body, Math.floor(now / 1000)));
      if (code >= 200 && code < 300) {
        if (row.fresh) {
          sentFresh.add(row.event_id);
          trimOldest(sentFresh, REMEMBERED_FRESH);
          postFirst?.settle(row.event_id);
        } else markDone(row, code);
        deps.metrics?.webhookAttempt?.('success');
        return;
      }
      error = `http ${code}`;
      deps.metrics?.webhookAttempt?.(code >= 500 ? 'http_5xx' : 'http_4xx');
    } catch (e) {
      const timedOut = e instanceof errors.HeadersTimeoutError || e instanceof errors.BodyTimeoutError || e instanceof errors.ConnectTimeoutError;
      refused = (e as { code?: unknown }).code === NOT_PUBLIC;
      error = timedOut ? 'timeout' : failureText(e);
      deps.metrics?.webhookAttempt?.(timedOut ? 'timeout' : refused ? 'refused' : 'network');

    }
    const attempts = row.attempts + 1;
    logFailure(row, attempts, error, refused);
    // Exponential backoff, capped, each delay drawn from [½, 1) of its step (jitter), counted from the
    // attempt's end (a timed-out one took timeoutMs); stops once past the retry window.
    const delay = Math.min(maxDelay, baseDelay * 2 ** Math.min(attempts - 1, 30)) * (0.5 + Math.random() / 2);
    const ended = clock().getTime();
    const giveUp = ended + delay - row.created_ms > retryFor;
    const status = giveUp ? 'failed' : 'pending';
    if (row.fresh) markTried({ ...row, fresh: row.fresh }, { status, attempts, nextMs: ended + delay, code, error });
    else table.retry.run(status, code, error, ended + delay, row.otp_id, row.event_id);
    if (giveUp) logger.warn({ eventId: row.event_id, attempts }, 'webhook abandoned after the retry window');
  }

  // New events go straight to their endpoint's queue from the consumer; the scan brings back retries
  // that came due and whatever the last run left pending.
  let wake: (() => void) | undefined;
  let nextPrune = 0;
  /**
   * Where the next scan starts among the due rows: scans page through them, so rows already held in
   * memory (a slow endpoint's queue) cannot fill every scan and starve other endpoints' retries.
   */
  let cursor: DueCursor | undefined;
  const loop = (async () => {
    while (running) {
      try {
        const now = clock().getTime();
        if (queued.size < maxQueued) {
          const rows = table.dueAfter(now, cursor);
          for (const row of rows) enqueue(row);
          cursor = rows.length < SCAN_ROWS ? undefined : rows[rows.length - 1];
        }
        if (now >= nextPrune) nextPrune = table.prune(now - retainMs) > 0 ? now : now + PRUNE_EVERY_MS;
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
    backlog: () => table.backlog.get()!.n,
    stop: async () => {
      await consumer.stop();
      running = false;
      wake?.();
      await loop;
      for (const q of queues.values()) for (const row of q.splice(0)) queued.delete(row.event_id);
      while ([...inFlight.values()].some((n) => n > 0)) await new Promise((r) => setTimeout(r, 20));
      clearTimeout(flushTimer);
      flushDone();
      await agent.destroy();
    },
  };
}

/**
 * What a failed POST records: the error's code and message (`ECONNREFUSED`, a TLS failure, ...).
 * Read off the object rather than by `instanceof Error`: undici's errors may come from another realm.
 */
function failureText(error: unknown): string {
  const { code, message } = (typeof error === 'object' && error !== null ? error : {}) as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : '';
  const withCode = typeof code === 'string' && !text.includes(code) ? `${code} ${text}`.trim() : text;
  return (withCode || String(error)).slice(0, 200);
}
