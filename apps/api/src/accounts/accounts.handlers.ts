/** Account commands: signup, keys, webhook configuration, message templates. Each answers after its events are durable and projected. */
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { renderSmsText, renderVoiceSpeech, templateInForce } from '#carriers';
import { accountDecider, accountStream, DEFAULT_SMS_TEMPLATE, DEFAULT_VOICE_TEMPLATE, effectiveTemplate } from '#domain';
import { newApiKey, newId, newWebhookSecret } from '#security';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';

/** A new API key as planned before the request's work: the key itself (shown once), its prefix and hash. */
export type PlannedKey = ReturnType<typeof newApiKey>;

/**
 * What a signup will create, decided before anything is appended: a request with an
 * Idempotency-Key stores it first, so a retry after a crash opens the same account with the same key.
 */
export interface SignupPlan {
  accountId: string;
  keyId: string;
  key: PlannedKey;
  name: string;
  testCredits: number;
  at: string;
}

export function planSignup(core: Core, name: string): SignupPlan {
  return { accountId: newId('acc'), keyId: newId('key'), key: newApiKey(), name, testCredits: core.config.testCredits, at: core.clock().toISOString() };
}

export class Signup extends Command<{ ok: true; account_id: string; api_key: string; test_credits: number }> {
  constructor(readonly plan: SignupPlan) {
    super();
  }
}

/** Idempotent on the plan: an account already opened with the plan's key is answered again, nothing appended. */
@CommandHandler(Signup)
export class SignupHandler implements ICommandHandler<Signup> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ plan }: Signup) {
    const { core } = this;
    const { accountId, keyId, key, name, testCredits, at } = plan;
    // One command, one append: the account and the key its customer is shown exist together or not at all.
    await core.runner.handle(accountStream(accountId), accountDecider, {
      type: 'OpenAccount',
      accountId,
      name,
      testCredits,
      at,
      firstKey: { keyId, keyHash: key.hash, prefix: key.prefix },
    });
    await core.caughtUp();
    return { ok: true as const, account_id: accountId, api_key: key.key, test_credits: testCredits };
  }
}

/** What POST /keys will issue, decided (and, with an Idempotency-Key, stored) before it is appended. */
export interface KeyPlan {
  keyId: string;
  key: PlannedKey;
  at: string;
}

export function planKey(core: Core): KeyPlan {
  return { keyId: newId('key'), key: newApiKey(), at: core.clock().toISOString() };
}

export class IssueKey extends Command<{ ok: true; key_id: string; api_key: string }> {
  constructor(
    readonly accountId: string,
    readonly plan: KeyPlan,
  ) {
    super();
  }
}

/** Idempotent on the plan: a key id already issued with the plan's key is answered again. */
@CommandHandler(IssueKey)
export class IssueKeyHandler implements ICommandHandler<IssueKey> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ accountId, plan: { keyId, key, at } }: IssueKey) {
    await this.core.runner.handle(accountStream(accountId), accountDecider, { type: 'IssueApiKey', keyId, keyHash: key.hash, prefix: key.prefix, at });
    await this.core.caughtUp();
    return { ok: true as const, key_id: keyId, api_key: key.key };
  }
}

export class RevokeKey extends Command<{ ok: true; key_id: string; revoked: true }> {
  constructor(
    readonly accountId: string,
    readonly keyId: string,
  ) {
    super();
  }
}

@CommandHandler(RevokeKey)
export class RevokeKeyHandler implements ICommandHandler<RevokeKey> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ accountId, keyId }: RevokeKey) {
    const { state } = await this.core.runner.handle(accountStream(accountId), accountDecider, { type: 'RevokeApiKey', keyId, at: this.core.clock().toISOString() });
    // Effective in this process at once, and everywhere once projected. The decider refused an unknown key.
    const keyHash = state.keys.get(keyId)?.keyHash;
    if (keyHash === undefined) throw new Error(`revoked key ${keyId} is not in its account's state`);
    this.core.revokedKeys.add(keyId, keyHash);
    await this.core.caughtUp();
    return { ok: true as const, key_id: keyId, revoked: true as const };
  }
}

export class ConfigureWebhook extends Command<{ ok: true; url: string; secret: string }> {
  constructor(
    readonly accountId: string,
    readonly url: string,
  ) {
    super();
  }
}

@CommandHandler(ConfigureWebhook)
export class ConfigureWebhookHandler implements ICommandHandler<ConfigureWebhook> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ accountId, url }: ConfigureWebhook) {
    const secret = newWebhookSecret();
    await this.core.runner.handle(accountStream(accountId), accountDecider, {
      type: 'ConfigureWebhook',
      url,
      secret: this.core.cipher.seal(secret),
      at: this.core.clock().toISOString(),
    });
    await this.core.caughtUp();
    return { ok: true as const, url, secret };
  }
}

/** Beyond API.md: stops the account's webhooks, retries of earlier ones and per-send URLs included. */
export class RemoveWebhook extends Command<{ ok: true; url: null }> {
  constructor(readonly accountId: string) {
    super();
  }
}

@CommandHandler(RemoveWebhook)
export class RemoveWebhookHandler implements ICommandHandler<RemoveWebhook> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ accountId }: RemoveWebhook) {
    // Idempotent: an account without a webhook appends nothing and answers the same.
    await this.core.runner.handle(accountStream(accountId), accountDecider, { type: 'RemoveWebhook', at: this.core.clock().toISOString() });
    await this.core.caughtUp();
    return { ok: true as const, url: null };
  }
}

const PREVIEW_CODE = '123456';

export interface TemplateAnswer {
  ok: true;
  sms: string;
  voice: string;
  preview: { code: string; sms: string; voice: string };
}

/**
 * The templates in force, and what they render to: the text a phone gets, the speech a call reads.
 * A template stored under older rules that today's refuse is not in force (the default is sent).
 */
export function templateAnswer(stored: { sms: string; voice: string }): TemplateAnswer {
  const sms = templateInForce('sms', stored.sms) ?? DEFAULT_SMS_TEMPLATE;
  const voice = templateInForce('voice', stored.voice) ?? DEFAULT_VOICE_TEMPLATE;
  return { ok: true, sms, voice, preview: { code: PREVIEW_CODE, sms: renderSmsText(PREVIEW_CODE, sms), voice: renderVoiceSpeech(PREVIEW_CODE, voice) } };
}

export class SetMessageTemplate extends Command<TemplateAnswer> {
  constructor(
    readonly accountId: string,
    readonly sms: string | null | undefined,
    readonly voice: string | null | undefined,
  ) {
    super();
  }
}

@CommandHandler(SetMessageTemplate)
export class SetMessageTemplateHandler implements ICommandHandler<SetMessageTemplate> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ accountId, sms, voice }: SetMessageTemplate) {
    const at = this.core.clock().toISOString();
    const { state } = await this.core.runner.handle(accountStream(accountId), accountDecider, { type: 'SetMessageTemplate', sms, voice, at });
    // Read before the next await (the runner's state moves on); answered once GET shows it too.
    const effective = effectiveTemplate(state.template);
    await this.core.caughtUp();
    return templateAnswer(effective);
  }
}
