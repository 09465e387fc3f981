/** The read models the service runs, by name (the `ledger rebuild <name>` argument). */
import type { Projection } from '../projection.js';
import { depositsProjection } from './deposits.projection.js';
import { directoryProjection } from './directory.projection.js';
import { moneyProjection } from './money.projection.js';
import { otpsProjection, type OtpsProjectionOptions } from './otps.projection.js';
import { otpRoutesProjection } from './otp-routes.projection.js';
import { sendIdempotencyProjection } from './send-idempotency.projection.js';

export type ReadModelOptions = OtpsProjectionOptions;

export function defaultProjections(options: ReadModelOptions = {}): Projection[] {
  return [moneyProjection, otpsProjection(options), directoryProjection, otpRoutesProjection, depositsProjection, sendIdempotencyProjection];
}

export function projectionByName(name: string, options: ReadModelOptions = {}): Projection | undefined {
  return defaultProjections(options).find((p) => p.name === name);
}
