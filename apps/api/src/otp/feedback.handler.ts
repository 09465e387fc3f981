/** Customer feedback: the user typed the right code, which proves delivery even without a carrier receipt. */
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { accountDecider, accountStream, DomainError } from '#domain';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';

export class RecordFeedback extends Command<{ ok: true; id: string; status: string }> {
  constructor(
    readonly accountId: string,
    readonly otpId: string,
    readonly verified: boolean,
  ) {
    super();
  }
}

@CommandHandler(RecordFeedback)
export class RecordFeedbackHandler implements ICommandHandler<RecordFeedback> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ accountId, otpId, verified }: RecordFeedback): Promise<{ ok: true; id: string; status: string }> {
    await this.core.caughtUp();
    const otp = this.core.reads.otp(accountId, otpId);
    if (!otp) throw new DomainError('not_found', 'no OTP with this id');
    // `verified: false` proves nothing either way (the user may type late); only a confirmation settles.
    if (verified) {
      const charge = this.core.runner.cached(accountStream(accountId), accountDecider)?.open.get(otpId);
      const { events } = await this.core.runner.handle(accountStream(accountId), accountDecider, {
        type: 'MarkDelivered',
        otpId,
        via: 'feedback',
        at: this.core.clock().toISOString(),
      });
      for (const e of events) if (e.type === 'Delivered') this.core.pipelineMetrics.settled?.(otpId, { type: 'Delivered', via: e.data.via }, charge);
      await this.core.caughtUp();
    }
    return { ok: true, id: otpId, status: this.core.reads.otp(accountId, otpId)?.status ?? otp.status };
  }
}
