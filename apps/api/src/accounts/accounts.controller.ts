import { Body, Controller, Delete, Get, Headers, HttpCode, Inject, Ip, Param, Post, Put, UseGuards } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { DomainError, effectiveTemplate, formatUsd } from '#domain';
import { Auth, ApiKeyGuard, type AuthContext } from '../http/auth.guard.js';
import { EmptyBody, IdempotencyKeyHeader, requestHash, SIGNUP_FIELDS, SignupBody, TemplateBody, WebhookBody } from '../http/schemas.js';
import { checkWebhookUrl, parseIdParam, parseInput } from '../http/validation.js';
import { addressBucket, rateLimited } from '../http/rate-limiter.js';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';
import { ConfigureWebhook, IssueKey, planKey, planSignup, RemoveWebhook, RevokeKey, SetMessageTemplate, Signup, templateAnswer } from './accounts.handlers.js';

@Controller('api/v1')
export class AccountsController {
  constructor(
    private readonly commands: CommandBus,
    @Inject(CORE) private readonly core: Core,
  ) {}

  @Post('signup')
  @HttpCode(201)
  signup(@Body() body: unknown, @Ip() ip: string, @Headers('idempotency-key') key: string | undefined) {
    const { name } = parseInput(SignupBody, body ?? {}, 'body');
    const idempotencyKey = parseInput(IdempotencyKeyHeader, key, { header: 'Idempotency-Key' });
    return this.core.httpIdempotency.run(`signup:${ip}`, idempotencyKey, requestHash(body, SIGNUP_FIELDS), {
      admit: () => {
        const wait = this.core.signupBuckets.take(addressBucket(ip));
        if (wait > 0) throw rateLimited(wait, 'too many signups from this address');
      },
      plan: () => planSignup(this.core, name ?? ''),
      perform: (plan) => this.commands.execute(new Signup(plan)),
    });
  }

  @Post('keys')
  @HttpCode(201)
  @UseGuards(ApiKeyGuard)
  issueKey(@Auth() auth: AuthContext, @Body() body: unknown, @Headers('idempotency-key') key: string | undefined) {
    parseInput(EmptyBody, body ?? undefined, 'body');
    const idempotencyKey = parseInput(IdempotencyKeyHeader, key, { header: 'Idempotency-Key' });
    return this.core.httpIdempotency.run(`keys:${auth.accountId}`, idempotencyKey, requestHash(body), {
      plan: () => planKey(this.core),
      perform: (plan) => this.commands.execute(new IssueKey(auth.accountId, plan)),
    });
  }

  /**
   * The account's keys: how a customer finds the id of the key that signup gave (signup answers
   * with the key, not its id) to revoke it. Each key shows its first characters only.
   */
  @Get('keys')
  @UseGuards(ApiKeyGuard)
  async listKeys(@Auth() auth: AuthContext) {
    await this.core.caughtUp();
    return { ok: true as const, keys: this.core.reads.apiKeys(auth.accountId).map((k) => ({ key_id: k.keyId, prefix: k.prefix, revoked: k.revoked })) };
  }

  @Delete('keys/:key_id')
  @UseGuards(ApiKeyGuard)
  revokeKey(@Auth() auth: AuthContext, @Param('key_id') keyId: string) {
    return this.commands.execute(new RevokeKey(auth.accountId, parseIdParam(keyId, 'key')));
  }

  @Put('webhook')
  @UseGuards(ApiKeyGuard)
  configureWebhook(@Auth() auth: AuthContext, @Body() body: unknown) {
    const { url } = parseInput(WebhookBody, body, 'body');
    checkWebhookUrl('url', url, this.core.config.webhookPrivateAddresses);
    return this.commands.execute(new ConfigureWebhook(auth.accountId, url));
  }

  /** Beyond API.md: a customer retiring its endpoint stops what would be sent (and retried for 24 h) to it. */
  @Delete('webhook')
  @UseGuards(ApiKeyGuard)
  removeWebhook(@Auth() auth: AuthContext) {
    return this.commands.execute(new RemoveWebhook(auth.accountId));
  }

  /** Beyond API.md, like GET /keys: the account's own message text, for OTPs sent after the answer. */
  @Put('template')
  @UseGuards(ApiKeyGuard)
  setTemplate(@Auth() auth: AuthContext, @Body() body: unknown) {
    const { sms, voice } = parseInput(TemplateBody, body, 'body');
    return this.commands.execute(new SetMessageTemplate(auth.accountId, sms, voice));
  }

  @Get('template')
  @UseGuards(ApiKeyGuard)
  async template(@Auth() auth: AuthContext) {
    await this.core.caughtUp();
    return templateAnswer(effectiveTemplate(this.core.reads.messageTemplate(auth.accountId)));
  }

  @Get('balance')
  @UseGuards(ApiKeyGuard)
  async balance(@Auth() auth: AuthContext) {
    await this.core.caughtUp();
    const b = this.core.reads.balance(auth.accountId);
    if (!b) throw new DomainError('unauthorized', 'account not found');
    return { ok: true, balance: formatUsd(b.balance), currency: 'USD', test_credits: b.testCreditsLeft, pending: formatUsd(b.pending) };
  }
}
