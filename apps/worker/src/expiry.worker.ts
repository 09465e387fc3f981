/**
 * Expiry: an OTP with no delivery proof by its deadline is expired, which
 * settlement turns into a refund (I6: every accepted OTP ends delivered or
 * refunded within the window). It scans the open-OTP read model; appending
 * `Expired` is idempotent, so overlapping scans or several workers are harmless.
 */
import { otpDecider, otpStream } from '#domain';
import type { WorkerDeps } from './worker.deps.js';

export interface DueOtps {
  dueBefore(epochMs: number, limit: number): { otpId: string; accountId: string }[];
}

export function startExpiry(deps: WorkerDeps, due: DueOtps, options: { intervalMs?: number; pageSize?: number } = {}): { scan(): Promise<number>; stop(): Promise<void> } {
  let running = true;
  let current: Promise<number> = Promise.resolve(0);

  /** One page per tick: rows stay "open" in the read model until their refund is projected, so looping would re-read them. */
  async function scan(): Promise<number> {
    const now = deps.clock();
    const batch = due.dueBefore(now.getTime(), options.pageSize ?? 2_000);
    await Promise.all(
      batch.map(({ otpId, accountId }) => deps.runner.handle(otpStream(otpId), otpDecider, { type: 'Expire', at: now.toISOString() }, { accountId })),
    );
    return batch.length;
  }

  const timer = setInterval(() => {
    if (!running) return;
    current = current.then(scan).catch((error: unknown) => {
      deps.logger.error({ err: error }, 'expiry scan failed');
      return 0;
    });
  }, options.intervalMs ?? 1_000);
  timer.unref();
  return {
    scan: () => (current = current.then(scan)),
    stop: async () => {
      running = false;
      clearInterval(timer);
      await current;
    },
  };
}
