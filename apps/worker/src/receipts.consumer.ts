/**
 * Receipts: every delivery receipt becomes `ReceiptReceived` on its OTP's
 * stream. A receipt whose message id is not known yet (it raced the submit
 * answer, or came from another instance's submission) is kept and matched
 * later, never dropped: first from the OTP's own stream when the read model
 * lags, then on a schedule that backs off from 50 ms to a minute; after 24 h
 * unmatched it is logged and discarded.
 */
import type Database from 'better-sqlite3';
import { forEachKeyInOrder, TOPICS, type Consumer } from '#bus';
import { DomainError, otpDecider, type OtpEvent, type OtpState, otpStream } from '#domain';
import { addMissingColumns } from '#projections';
import { ReceiptMessage, type SettlementMessage } from './messages.js';
import type { WorkerDeps } from './worker.deps.js';

export interface RouteLookup {
  /** The OTP a provider's message id belongs to, once its `Routed` is projected. */
  find(provider: string, providerMessageId: string): { otpId: string; accountId: string } | undefined;
  /** The account of an OTP. */
  accountOf(otpId: string): string | undefined;
}

const UNMATCHED_TTL_MS = 24 * 3600 * 1000;
/** A kept receipt is tried again after 50 ms, then twice as late each time, up to a minute. */
const FIRST_RETRY_MS = 50;
/** Receipt statuses that deliver an OTP (see the settlement consumer). */
const DELIVERS: ReadonlySet<string> = new Set(['delivered', 'answered']);
const MAX_RETRY_MS = 60_000;

export interface ReceiptsWorker {
  consumer: Consumer;
  /**
   * Records a receipt now, without the bus: true once its `ReceiptReceived` is durable, or it was
   * refused (logged); false when it names no OTP yet, and rejects when it could not be recorded (the
   * log refused it, or this worker stopped). In both of those the caller publishes it to the bus,
   * whose consumer retries it, or keeps it for a late match (the bus syncs what it acknowledges to
   * the disk; the table of kept receipts does not).
   */
  take(receipt: unknown): Promise<boolean>;
  /** Tries the kept receipts that are due again; returns how many were recorded. */
  rematch(): Promise<number>;
  /** Receipts kept until their OTP can be found. */
  unmatched(): number;
  stop(): Promise<void>;
}

interface KeptRow {
  provider: string;
  provider_message_id: string;
  status: string;
  body: string;
  received_ms: number;
  tries: number;
}

export interface ReceiptsOptions {
  rematchMs?: number;
  /**
   * Settles a delivering receipt (delivered, answered) as soon as its `ReceiptReceived` is durable,
   * without waiting for the relay to bring it to the settlement consumer: one hop (log → relay →
   * bus → consumer) less between a receipt and its webhook. The relay's settlement message still
   * follows: given the same settler, the settlement consumer drops it (see `settler`); it is what
   * settles the OTP if this one fails or the process dies first. For a process that also runs
   * settlement (the embedded default).
   */
  settleNow?: (m: SettlementMessage) => Promise<void>;
}

export async function startReceipts(deps: WorkerDeps, lookup: RouteLookup, options: ReceiptsOptions = {}): Promise<ReceiptsWorker> {
  const { db, runner, logger, clock, store } = deps;
  db.exec(`CREATE TABLE IF NOT EXISTS unmatched_receipts (provider TEXT NOT NULL, provider_message_id TEXT NOT NULL, status TEXT NOT NULL,
    body TEXT NOT NULL, received_ms INTEGER NOT NULL, PRIMARY KEY (provider, provider_message_id, status)) WITHOUT ROWID`);
  // Files from before the retry schedule: every kept row becomes due at once.
  addMissingColumns(db, 'unmatched_receipts', { next_ms: 'INTEGER NOT NULL DEFAULT 0', tries: 'INTEGER NOT NULL DEFAULT 0' });
  db.exec('CREATE INDEX IF NOT EXISTS unmatched_receipts_due ON unmatched_receipts (next_ms)');
  const keep = db.prepare<[string, string, string, string, number, number]>(
    `INSERT OR IGNORE INTO unmatched_receipts (provider, provider_message_id, status, body, received_ms, next_ms, tries) VALUES (?, ?, ?, ?, ?, ?, 0)`,
  );
  // Only rows that are due, oldest schedule first: receipts that never match wait longer and longer
  // instead of filling every scan and starving newer ones.
  const due = db.prepare<[number], KeptRow>('SELECT * FROM unmatched_receipts WHERE next_ms <= ? ORDER BY next_ms LIMIT 500');
  const later = db.prepare<[number, string, string, string]>(
    'UPDATE unmatched_receipts SET tries = tries + 1, next_ms = ? WHERE provider = ? AND provider_message_id = ? AND status = ?',
  );
  const forget = db.prepare<[string, string, string]>('DELETE FROM unmatched_receipts WHERE provider = ? AND provider_message_id = ? AND status = ?');
  const count = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM unmatched_receipts');

  /**
   * The account of a known OTP. The read model can lag the log (a busy
   * projector, another instance's submission), so the OTP's own stream is
   * asked next: its writers put the account id in every event's metadata.
   */
  async function accountOf(otpId: string): Promise<string | undefined> {
    const projected = lookup.accountOf(otpId);
    if (projected) return projected;
    for await (const e of store.readStream(otpStream(otpId), { maxCount: 1 })) {
      const accountId = e.metadata?.accountId;
      if (typeof accountId === 'string') return accountId;
    }
    return undefined;
  }

  /**
   * `unmatched` when the receipt cannot be matched yet; `refused` when it names an OTP that went
   * through another upstream (see the OTP decider's receipt claim): logged, never recorded.
   */
  async function record(r: ReceiptMessage): Promise<'recorded' | 'unmatched' | 'refused'> {
    const route = r.otpId ? { otpId: r.otpId, accountId: await accountOf(r.otpId) } : lookup.find(r.provider, r.providerMessageId);
    if (!route?.accountId) return 'unmatched';
    // Found by its message id, the route already belongs to this provider; named by the receipt, it must be checked.
    const claim = r.otpId ? { provider: r.provider, ...(r.attempt !== undefined ? { attempt: r.attempt } : {}) } : undefined;
    let result: { events: OtpEvent[]; state: OtpState };
    try {
      result = await runner.handle(
        otpStream(route.otpId),
        otpDecider,
        { type: 'RecordReceipt', provider: r.provider, providerMessageId: r.providerMessageId, status: r.status, raw: r.raw, at: r.at, ...(claim ? { claim } : {}) },
        { accountId: route.accountId, provider: r.provider },
      );
    } catch (error) {
      if (!(error instanceof DomainError && error.details.reason === 'receipt_claim')) throw error;
      logger.warn({ provider: r.provider, providerMessageId: r.providerMessageId, otpId: route.otpId, attempt: r.attempt, reason: error.message }, 'receipt refused: the OTP it names was not sent that way (another upstream, attempt or message id)');
      return 'refused';
    }
    // An OTP the log expired, or gave up on, before this receipt is refunded by the settlement
    // consumer, which takes the log's order: settling it early would let the receipt overtake that.
    const { events, state } = result;
    if (options.settleNow && !state.expired && !state.finalFailure)
      for (const e of events)
        if (e.type === 'ReceiptReceived' && DELIVERS.has(e.data.status)) settleEarly({ kind: 'receipt', otpId: route.otpId, accountId: route.accountId, status: e.data.status, at: e.data.at });
    return 'recorded';
  }

  /** In flight, not awaited by the batch (its receipts are recorded); awaited by stop. */
  const settling = new Set<Promise<void>>();
  function settleEarly(m: SettlementMessage): void {
    const p = options.settleNow!(m)
      .catch((error: unknown) => logger.debug({ err: error, otpId: m.otpId }, 'early settlement failed; the relay\'s settlement message settles the OTP'))
      .finally(() => settling.delete(p));
    settling.add(p);
  }

  async function retry(row: KeptRow, now: number): Promise<boolean> {
    const outcome = await record(ReceiptMessage.parse(JSON.parse(row.body)));
    if (outcome !== 'unmatched') {
      forget.run(row.provider, row.provider_message_id, row.status);
      return outcome === 'recorded';
    }
    if (now - row.received_ms > UNMATCHED_TTL_MS) {
      logger.warn({ provider: row.provider, providerMessageId: row.provider_message_id }, 'receipt never matched an OTP; discarded');
      forget.run(row.provider, row.provider_message_id, row.status);
    } else {
      later.run(now + Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(row.tries + 1, 20)), row.provider, row.provider_message_id, row.status);
    }
    return false;
  }

  async function rematch(): Promise<number> {
    const now = clock().getTime();
    // One message's receipts in the order they came; different messages at once.
    const lanes = new Map<string, KeptRow[]>();
    for (const row of due.all(now)) {
      const key = `${row.provider}\t${row.provider_message_id}`;
      lanes.set(key, [...(lanes.get(key) ?? []), row]);
    }
    let n = 0;
    await Promise.all(
      [...lanes.values()].map(async (lane) => {
        for (const row of lane) if (await retry(row, now)) n++;
      }),
    );
    return n;
  }

  const consumer = await deps.bus.consume<unknown>('nexo-receipts', TOPICS.receipts, (batch) =>
    forEachKeyInOrder(batch, async (msg) => {
      const r = ReceiptMessage.parse(msg.value);
      if ((await record(r)) !== 'unmatched') return;
      const now = clock().getTime();
      keep.run(r.provider, r.providerMessageId, r.status, JSON.stringify(r), now, now + FIRST_RETRY_MS);
    }),
  );
  let running = true;
  /** Receipts being taken straight from their source (`take`): stop waits for them. */
  const taken = new Set<Promise<unknown>>();
  const loop = (async () => {
    while (running) {
      try {
        await rematch();
      } catch (error) {
        if (!db.open) return;
        logger.error({ err: error }, 'receipt rematch failed');
      }
      await new Promise((r) => setTimeout(r, options.rematchMs ?? 100));
    }
  })();
  return {
    consumer,
    take: async (value) => {
      if (!running) throw new Error('the receipts worker has stopped');
      const taking = record(ReceiptMessage.parse(value));
      taken.add(taking);
      try {
        return (await taking) !== 'unmatched';
      } finally {
        taken.delete(taking);
      }
    },
    rematch,
    unmatched: () => count.get()!.n,
    stop: async () => {
      await consumer.stop();
      running = false;
      await loop;
      await Promise.allSettled(taken);
      await Promise.all(settling);
    },
  };
}

export type { Database };
