import { Body, Controller, Get, Headers, HttpCode, Inject, Param, Post, Query, UseGuards } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { requestHashKey } from '#security';
import { Auth, ApiKeyGuard, type AuthContext } from '../http/auth.guard.js';
import { FeedbackBody, IdempotencyKeyHeader, ListQuery, requestHash, SEND_OTP_FIELDS, SendOtpBody } from '../http/schemas.js';
import { checkWebhookUrl, parseIdParam, parseInput } from '../http/validation.js';
import { SendOtp } from './send-otp.handler.js';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';
import { GetOtp, listOtps } from './otp.queries.js';
import { RecordFeedback } from './feedback.handler.js';

@Controller('api/v1')
@UseGuards(ApiKeyGuard)
export class OtpController {
  private readonly hashKey: Buffer;

  constructor(
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    @Inject(CORE) private readonly core: Core,
  ) {
    this.hashKey = requestHashKey(core.config.phonePepper);
  }

  @Post('send-otp')
  @HttpCode(200)
  send(@Auth() auth: AuthContext, @Body() body: unknown, @Headers('idempotency-key') key: string | undefined) {
    const input = parseInput(SendOtpBody, body, 'body');
    checkWebhookUrl('webhook_url', input.webhook_url, this.core.config.webhookPrivateAddresses);
    const idempotencyKey = parseInput(IdempotencyKeyHeader, key, { header: 'Idempotency-Key' });
    return this.commands.execute(
      new SendOtp(
        auth,
        { phone: input.phone, code: input.code, channel: input.channel, webhookUrl: input.webhook_url },
        idempotencyKey,
        idempotencyKey === undefined ? undefined : requestHash(body, SEND_OTP_FIELDS, this.hashKey),
        // Sends recorded before the hash was keyed (kept IDEMPOTENCY_RETENTION_MS, 48 h) hold the plain one.
        idempotencyKey === undefined ? undefined : () => requestHash(body, SEND_OTP_FIELDS),
      ),
    );
  }

  @Get('otp')
  list(@Auth() auth: AuthContext, @Query() query: unknown) {
    return listOtps(this.core, auth.accountId, parseInput(ListQuery, query, 'query').limit);
  }

  @Get('otp/:id')
  get(@Auth() auth: AuthContext, @Param('id') id: string) {
    return this.queries.execute(new GetOtp(auth.accountId, parseIdParam(id, 'OTP')));
  }

  @Post('otp/:id/feedback')
  @HttpCode(200)
  feedback(@Auth() auth: AuthContext, @Param('id') id: string, @Body() body: unknown) {
    const otpId = parseIdParam(id, 'OTP');
    const { verified } = parseInput(FeedbackBody, body, 'body');
    return this.commands.execute(new RecordFeedback(auth.accountId, otpId, verified));
  }
}
