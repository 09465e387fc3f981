/** The account's deposit address, assigned on first request; answers once the listener can see it. */
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { type AssignedAddress, depositAddressFor } from '../../../chain-listener/src/index.js';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';

export class AssignDepositAddress extends Command<AssignedAddress> {
  constructor(readonly accountId: string) {
    super();
  }
}

@CommandHandler(AssignDepositAddress)
export class AssignDepositAddressHandler implements ICommandHandler<AssignDepositAddress> {
  constructor(@Inject(CORE) private readonly core: Core) {}

  async execute({ accountId }: AssignDepositAddress): Promise<AssignedAddress> {
    const { core } = this;
    const assigned = await depositAddressFor({ runner: core.runner, xpub: core.config.depositXpub, clock: core.clock }, accountId);
    // The listener watches the addresses in the directory read model: the customer must not see an address it does not watch yet.
    await core.caughtUp();
    return assigned;
  }
}
