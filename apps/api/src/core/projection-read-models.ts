/** The read models of `#projections`, behind the narrow interface the HTTP layer reads. */
import type { EventStore } from '#eventstore';
import type { Logger } from '#observability';
import { defaultProjections, findAccountByKeyHash, getBalance, getOtp, monthlyStats, Projector, recentOtps, statement, type Db } from '#projections';
import type { ProjectionStatus, ReadModels } from './read-models.js';

export function readModelsOn(db: Db): ReadModels {
  return {
    apiKey: (hash) => findAccountByKeyHash(db, hash),
    balance: (accountId) => getBalance(db, accountId),
    otp: (accountId, otpId) => getOtp(db, accountId, otpId),
    recentOtps: (accountId, limit) => recentOtps(db, accountId, limit),
    stats: (month, accountId) => {
      const { month: _, ...figures } = monthlyStats(db, month, accountId === undefined ? {} : { accountId });
      return figures;
    },
    statement: (accountId, month) => statement(db, accountId, month).lines,
  };
}

export async function startReadModels(
  store: EventStore,
  db: Db,
  logger: Logger,
  options: { expiryMs?: number } = {},
): Promise<{ reads: ReadModels; projections: ProjectionStatus & { projector: Projector; stop(): Promise<void> } }> {
  const projector = new Projector({
    store,
    db,
    projections: defaultProjections({ expiryMs: options.expiryMs }),
    onError: (error) => logger.error({ err: error }, 'projection failed; retrying from the checkpoint'),
  });
  // Catch up before serving, so a restarted service answers from current read models.
  await projector.catchUp();
  projector.start();
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
