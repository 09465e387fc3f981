/** Account commands: signup, keys, webhook configuration, message templates. Each answers after its events are durable and projected. */
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { accountDecider, accountStream, effectiveTemplate } from '#domain';
import { newApiKey, newId, newWebhookSecret } from '#security';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';

export class Signup extends Command<{ ok: true; account_id: string; api_key: string; test_credits: number }> {
  constructor(readonly name: string) {
    super();
  }
}

@CommandHandler(Signup)
export class SignupHandler implements ICommandHandler<Signup> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ name }: Signup) {
    const { core } = this;
    const accountId = newId('acc');
    const key = newApiKey();
    const at = core.clock().toISOString();
    const stream = accountStream(accountId);
    const testCredits = core.config.testCredits;
    // Queued together on one stream, the two commands are appended as one write.
    await Promise.all([
      core.runner.handle(stream, accountDecider, { type: 'OpenAccount', accountId, name, testCredits, at }),
      core.runner.handle(stream, accountDecider, { type: 'IssueApiKey', keyId: newId('key'), keyHash: key.hash, prefix: key.prefix, at }),
    ]);
    await core.caughtUp();
    return { ok: true as const, account_id: accountId, api_key: key.key, test_credits: testCredits };
  }
}

export class IssueKey extends Command<{ ok: true; key_id: string; api_key: string }> {
  constructor(readonly accountId: string) {
    super();
  }
}

@CommandHandler(IssueKey)
export class IssueKeyHandler implements ICommandHandler<IssueKey> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ accountId }: IssueKey) {
    const key = newApiKey();
    const keyId = newId('key');
    await this.core.runner.handle(accountStream(accountId), accountDecider, {
      type: 'IssueApiKey',
      keyId,
      keyHash: key.hash,
      prefix: key.prefix,
      at: this.core.clock().toISOString(),
    });
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
    await this.core.runner.handle(accountStream(accountId), accountDecider, { type: 'RevokeApiKey', keyId, at: this.core.clock().toISOString() });
    // Effective in this process at once, and everywhere once projected.
    this.core.revokedKeys.add(keyId);
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

export class SetMessageTemplate extends Command<{ ok: true; sms: string; voice: string }> {
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
    return { ok: true as const, ...effective };
  }
}
