/** The read models of `#projections`, behind the narrow interface the HTTP layer reads. */
import type { EventStore } from '#eventstore';
import type { Logger } from '#observability';
import {
  attachReadModels,
  defaultProjections,
  findAccountByKeyHash,
  getBalance,
  getMessageTemplate,
  getOtp,
  listApiKeys,
  monthlyStats,
  type ProjectionProgress,
  Projector,
  recentOtps,
  sendIdempotencyRecord,
  statement,
  ThreadedProjector,
  type Db,
} from '#projections';
import type { ProjectionStatus, ReadModels } from './read-models.js';

export function readModelsOn(db: Db): ReadModels {
  return {
    apiKey: (hash) => findAccountByKeyHash(db, hash),
    apiKeys: (accountId) => listApiKeys(db, accountId),
    messageTemplate: (accountId) => getMessageTemplate(db, accountId),
    balance: (accountId) => getBalance(db, accountId),
    otp: (accountId, otpId) => getOtp(db, accountId, otpId),
    recentOtps: (accountId, limit) => recentOtps(db, accountId, limit),
    sendKey: (accountId, key) => sendIdempotencyRecord(db, accountId, key),
    stats: (month, accountId) => {
      const { month: _, ...figures } = monthlyStats(db, month, accountId === undefined ? {} : { accountId });
      return figures;
    },
    statement: (accountId, month) => statement(db, accountId, month).lines,
  };
}

/**
 * Starts the projections and returns the read models over `db`. With `thread`
 * (the embedded SQLite mode) they run on their own thread into their own file,
 * which is then attached to `db` for reading; otherwise (EventStoreDB) in this
 * thread, into `db` itself. Either way they have caught up before this returns,
 * so a restarted service answers from current read models.
 */
export async function startReadModels(
  store: EventStore,
  db: Db,
  logger: Logger,
  options: { expiryMs?: number; thread?: { logFile: string; readModelsFile: string }; onThreadRestart?: () => void } = {},
): Promise<{ reads: ReadModels; projections: ProjectionStatus & { projector: ProjectionProgress; stop(): Promise<void> } }> {
  const onError = (error: unknown) => logger.error({ err: error }, 'projection failed; retrying from the checkpoint');
  let projector: ProjectionProgress;
  if (options.thread) {
    projector = await ThreadedProjector.start({ store, ...options.thread, expiryMs: options.expiryMs, onError, onRestart: options.onThreadRestart });
    attachReadModels(db, options.thread.readModelsFile);
  } else {
    const local = new Projector({ store, db, projections: defaultProjections({ expiryMs: options.expiryMs }), onError });
    await local.catchUp();
    local.start();
    projector = local;
  }
  return {
    reads: readModelsOn(db),
    projections: {
      projector,
      caughtUp: (timeoutMs) => projector.waitUntilCaughtUp(timeoutMs),
      lag: () => {
        const l = projector.lastLag();
        return { events: l.events, seconds: l.seconds };
      },
      stop: () => projector.stop(),
    },
  };
}
