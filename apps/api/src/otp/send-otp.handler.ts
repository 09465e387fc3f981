/**
 * The hot path: one OTP request becomes `[OtpRequested, Charged]` on the
 * account stream, durable before the answer. Checks run cheapest first; the
 * decider re-checks money and idempotency atomically on the stream.
 */
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import {
  accountDecider,
  accountStream,
  DomainError,
  formatUsd,
  fundingOf,
  IDEMPOTENCY_MEMORY_MS,
  idempotencyMatch,
  matchIdempotencyRecord,
  maskPhone,
  parseVnMobile,
  pickChannel,
  type AccountState,
  type Carrier,
  type Channel,
  type FundedBy,
  type IdempotencyMatch,
  type IdempotencyRecord,
  type RequestedChannel,
} from '#domain';
import { newId, phoneHash } from '#security';
import { phoneWindowInLogOpensAt } from './phone-window-in-log.js';
import { rateLimited } from '../http/rate-limiter.js';
import type { AuthContext } from '../http/auth.guard.js';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';

export interface SendOtpInput {
  phone: string;
  code: string;
  channel: RequestedChannel;
  webhookUrl?: string;
}

export interface SendOtpResponse {
  ok: true;
  id: string;
  carrier: Carrier;
  channel: Channel;
  status: 'queued';
  price: string;
  funded_by: FundedBy;
}

export class SendOtp extends Command<SendOtpResponse> {
  constructor(
    readonly auth: AuthContext,
    readonly input: SendOtpInput,
    readonly idempotencyKey: string | undefined,
    readonly requestHash: string | undefined,
    /** The unkeyed hash this body had before the hash was keyed, for sends recorded then. */
    readonly legacyRequestHash?: () => string,
  ) {
    super();
  }
}

export const sendOtpResponse = (id: string, carrier: Carrier, channel: Channel, price: bigint, fundedBy: FundedBy): SendOtpResponse => ({
  ok: true,
  id,
  carrier,
  channel,
  status: 'queued',
  price: formatUsd(price),
  funded_by: fundedBy,
});

@CommandHandler(SendOtp)
export class SendOtpHandler implements ICommandHandler<SendOtp> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ auth, input, idempotencyKey, requestHash, legacyRequestHash }: SendOtp): Promise<SendOtpResponse> {
    // The key's request rate was taken by ApiKeyGuard, once per request on every authenticated route.
    const { core } = this;
    const stream = accountStream(auth.accountId);
    const now = core.clock();
    // The key first: a key used before answers as it did, and another body under it is a conflict,
    // whatever that body would have been refused for on its own.
    if (idempotencyKey !== undefined) {
      // The cached state already holds every send decided on the stream, appended or in flight: a key
      // it does not know needs no wait for the batch in flight (a send queued behind it with the same
      // key is caught by the decider, and answered as a replay below). A key it knows is answered on
      // the state after the commands before this one, committed.
      const cached = core.runner.cached(stream, accountDecider);
      const known = cached === undefined || idempotencyMatch(cached, idempotencyKey, requestHash, now.getTime()).kind !== 'fresh';
      const state = known ? (await core.runner.peek(stream, accountDecider)).state : cached;
      const match = await this.matchKey(state, auth.accountId, idempotencyKey, requestHash, legacyRequestHash, now.getTime());
      if (match.kind === 'conflict') throw new DomainError('idempotency_conflict', 'this Idempotency-Key was used with a different request');
      if (match.kind === 'replay') return this.replay(auth.accountId, match.otpId);
    }
    const mobile = parseVnMobile(input.phone);
    if (!mobile) throw new DomainError('invalid_phone', 'not a valid Vietnamese mobile number');
    const channel = pickChannel(mobile.carrier, input.channel, core.channels);
    if (!channel) throw new DomainError('no_route', `no ${input.channel === 'auto' ? '' : `${input.channel} `}route for ${mobile.carrier}`);

    const hash = phoneHash(core.config.phonePepper, mobile.e164);
    const testCredits = core.freeSends.allowed(hash);
    const refusePhone = (retryAfterMs: number) => {
      // An account that could not pay learns nothing about the phone: the per-phone limit is global, and
      // answering it first would tell a free account, for nothing, when another customer sent to a number.
      const cached = core.runner.cached(stream, accountDecider);
      if (cached !== undefined) fundingOf(cached, core.config.priceMicros, testCredits);
      return rateLimited(retryAfterMs, 'this phone was sent a code less than 30 s ago (upstream rule)');
    };
    const slot = core.phoneLimiter.tryAcquire(hash);
    if (!slot.allowed) throw refusePhone(slot.retryAfterMs);
    if (core.phoneWindowsInLog) {
      // Other API replicas accept sends too: the phone's window as the dispatchers took it in the log.
      let opensAt: number | undefined;
      try {
        opensAt = await phoneWindowInLogOpensAt(core.store, hash, now.getTime(), core.phoneLimiter.windowLengthMs);
      } catch (error) {
        // The dispatcher still keeps I8; the append below meets the same store and says whether it is down.
        core.logger.warn({ err: error }, 'the phone window in the log could not be read; the dispatcher will enforce it');
      }
      if (opensAt !== undefined) {
        core.phoneLimiter.release(hash);
        throw refusePhone(opensAt - now.getTime());
      }
    }

    const otpId = newId('otp');
    try {
      const { events } = await core.runner.handle(stream, accountDecider, {
        type: 'SendOtp',
        price: core.config.priceMicros,
        ...(testCredits ? {} : { testCredits: false as const }),
        otp: {
          otpId,
          phone: core.cipher.seal(mobile.e164),
          phoneHash: hash,
          phoneMasked: maskPhone(mobile.e164),
          carrier: mobile.carrier,
          channel,
          ...(input.channel === 'auto' ? { auto: true } : {}),
          code: core.cipher.seal(input.code),
          ...(input.webhookUrl !== undefined ? { webhookUrl: input.webhookUrl } : {}),
          ...(idempotencyKey !== undefined ? { idempotencyKey, requestHash } : {}),
          at: now.toISOString(),
        },
      });
      const charged = events.find((e) => e.type === 'Charged');
      if (!charged) {
        // A concurrent request with the same Idempotency-Key won the race: answer as its replay.
        core.phoneLimiter.release(hash);
        const { state } = await core.runner.peek(stream, accountDecider);
        const match = idempotencyMatch(state, idempotencyKey, requestHash, now.getTime());
        if (match.kind !== 'replay') throw new Error('send decided no events without an idempotent replay');
        return this.replay(auth.accountId, match.otpId);
      }
      if (charged.data.fundedBy === 'test_credit') core.freeSends.record(hash);
      core.metrics.otpRequested.inc({ carrier: mobile.carrier, channel });
      return sendOtpResponse(otpId, mobile.carrier, channel, BigInt(charged.data.amount), charged.data.fundedBy);
    } catch (error) {
      core.phoneLimiter.release(hash);
      throw error;
    }
  }

  /**
   * The key against the account's sends of the last 20 s (its state), then against the 48 h before
   * (the read model of send keys). A conflict is looked at again with the unkeyed hash of sends
   * recorded before the hash was keyed.
   */
  private async matchKey(
    state: AccountState,
    accountId: string,
    key: string,
    requestHash: string | undefined,
    legacyRequestHash: (() => string) | undefined,
    nowMs: number,
  ): Promise<IdempotencyMatch> {
    let earlier: IdempotencyRecord | undefined;
    let match = idempotencyMatch(state, key, requestHash, nowMs);
    if (match.kind === 'fresh') {
      earlier = await this.earlierSendKey(accountId, key);
      match = matchIdempotencyRecord(earlier, requestHash, nowMs);
    }
    if (match.kind === 'conflict' && legacyRequestHash !== undefined) {
      const legacy = legacyRequestHash();
      match = earlier !== undefined ? matchIdempotencyRecord(earlier, legacy, nowMs) : idempotencyMatch(state, key, legacy, nowMs);
    }
    return match;
  }

  /** A key used before the state's 20 s, from the read model, once that has applied the log so far. */
  private async earlierSendKey(accountId: string, key: string): Promise<IdempotencyRecord | undefined> {
    // It is normally a fraction of a second behind; one further behind than half the state's window
    // might not have a key the state has forgotten yet, so the answer waits for it (503 after 5 s).
    if (this.core.projections.lag().seconds * 1000 > IDEMPOTENCY_MEMORY_MS / 2) await this.core.caughtUp();
    return this.core.reads.sendKey(accountId, key);
  }

  private async replay(accountId: string, otpId: string): Promise<SendOtpResponse> {
    await this.core.caughtUp();
    const otp = this.core.reads.otp(accountId, otpId);
    if (!otp) throw new Error(`idempotent replay of ${otpId} finds no OTP in the read model`);
    return sendOtpResponse(otp.id, otp.carrier, otp.channel, otp.priceMicros, otp.fundedBy);
  }
}
