/**
 * Receipts: every delivery receipt becomes `ReceiptReceived` on its OTP's
 * stream. A receipt whose message id is not known yet (it raced the submit
 * answer, or came from another instance's submission) is kept and matched
 * later, never dropped; after 24 h unmatched it is logged and discarded.
 */
import type Database from 'better-sqlite3';
import { forEachKeyInOrder, TOPICS, type Consumer } from '#bus';
import { otpDecider, otpStream } from '#domain';
import { ReceiptMessage } from './messages.js';
import type { WorkerDeps } from './worker.deps.js';

export interface RouteLookup {
  /** The OTP a provider's message id belongs to, once its `Routed` is projected. */
  find(provider: string, providerMessageId: string): { otpId: string; accountId: string } | undefined;
  /** The account of an OTP. */
  accountOf(otpId: string): string | undefined;
}

const UNMATCHED_TTL_MS = 24 * 3600 * 1000;

export interface ReceiptsWorker {
  consumer: Consumer;
  /** Tries to match kept receipts again; returns how many were recorded. */
  rematch(): Promise<number>;
  stop(): Promise<void>;
}

export async function startReceipts(deps: WorkerDeps, lookup: RouteLookup, options: { rematchMs?: number } = {}): Promise<ReceiptsWorker> {
  const { db, runner, logger, clock } = deps;
  db.exec(`CREATE TABLE IF NOT EXISTS unmatched_receipts (provider TEXT NOT NULL, provider_message_id TEXT NOT NULL, status TEXT NOT NULL,
    body TEXT NOT NULL, received_ms INTEGER NOT NULL, PRIMARY KEY (provider, provider_message_id, status)) WITHOUT ROWID`);
  const keep = db.prepare('INSERT OR IGNORE INTO unmatched_receipts VALUES (?, ?, ?, ?, ?)');
  const kept = db.prepare<[], { provider: string; provider_message_id: string; status: string; body: string; received_ms: number }>(
    'SELECT * FROM unmatched_receipts ORDER BY received_ms LIMIT 1000',
  );
  const forget = db.prepare('DELETE FROM unmatched_receipts WHERE provider = ? AND provider_message_id = ? AND status = ?');

  /** Returns false when the receipt cannot be matched yet. */
  async function record(r: ReceiptMessage): Promise<boolean> {
    const route = r.otpId ? { otpId: r.otpId, accountId: lookup.accountOf(r.otpId) } : lookup.find(r.provider, r.providerMessageId);
    if (!route?.accountId) return false;
    await runner.handle(
      otpStream(route.otpId),
      otpDecider,
      { type: 'RecordReceipt', providerMessageId: r.providerMessageId, status: r.status, raw: r.raw, at: r.at },
      { accountId: route.accountId, provider: r.provider },
    );
    return true;
  }

  async function rematch(): Promise<number> {
    let n = 0;
    const now = clock().getTime();
    for (const row of kept.all()) {
      const r = ReceiptMessage.parse(JSON.parse(row.body));
      if (await record(r)) {
        n++;
        forget.run(row.provider, row.provider_message_id, row.status);
      } else if (now - row.received_ms > UNMATCHED_TTL_MS) {
        logger.warn({ provider: row.provider, providerMessageId: row.provider_message_id }, 'receipt never matched an OTP; discarded');
        forget.run(row.provider, row.provider_message_id, row.status);
      }
    }
    return n;
  }

  const consumer = await deps.bus.consume<unknown>('nexo-receipts', TOPICS.receipts, (batch) =>
    forEachKeyInOrder(batch, async (msg) => {
      const r = ReceiptMessage.parse(msg.value);
      if (!(await record(r))) keep.run(r.provider, r.providerMessageId, r.status, JSON.stringify(r), clock().getTime());
    }),
  );
  let running = true;
  let loop: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    loop = loop.then(() => (running ? rematch().then(() => undefined) : undefined)).catch((error: unknown) => logger.error({ err: error }, 'receipt rematch failed'));
  }, options.rematchMs ?? 2_000);
  timer.unref();
  return {
    consumer,
    rematch,
    stop: async () => {
      running = false;
      clearInterval(timer);
      await consumer.stop();
      await loop;
    },
  };
}

export type { Database };
