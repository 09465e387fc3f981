/** Read side of OTPs: status by id and the newest of an account, scoped to the asking account. */
import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { DomainError, formatUsd } from '#domain';
import type { Core } from '../core/core.js';
import type { OtpView } from '../core/read-models.js';
import { CORE } from '../core/tokens.js';

export class GetOtp extends Query<Record<string, unknown>> {
  constructor(
    readonly accountId: string,
    readonly otpId: string,
  ) {
    super();
  }
}

@QueryHandler(GetOtp)
export class GetOtpHandler implements IQueryHandler<GetOtp> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ accountId, otpId }: GetOtp): Promise<Record<string, unknown>> {
    await this.core.caughtUp();
    const otp = this.core.reads.otp(accountId, otpId);
    // Another account's id is indistinguishable from an unknown one.
    if (!otp) throw new DomainError('not_found', 'no OTP with this id');
    return { ok: true, ...otpBody(otp) };
  }
}

/**
 * The account's newest OTPs. A plain function rather than a QueryHandler: it
 * needs no provider of its own, and the controller already holds the core.
 */
export async function listOtps(core: Core, accountId: string, limit: number): Promise<{ ok: true; otps: Record<string, unknown>[] }> {
  await core.caughtUp();
  return { ok: true, otps: core.reads.recentOtps(accountId, limit).map(otpBody) };
}

/** One OTP as API.md's GET /api/v1/otp/:id names its fields; the list endpoint uses the same. */
export function otpBody(otp: OtpView): Record<string, unknown> {
  return {
    id: otp.id,
    phone: otp.phoneMasked,
    carrier: otp.carrier,
    channel: otp.channel,
    status: otp.status,
    price: formatUsd(otp.priceMicros),
    funded_by: otp.fundedBy,
    created_at: otp.createdAt,
    ...(otp.deliveredAt ? { delivered_at: otp.deliveredAt } : {}),
    ...(otp.refundedAt ? { refunded_at: otp.refundedAt, refund_reason: otp.refundReason } : {}),
    history: otp.history,
  };
}
