/** Money in (API.md): the account's deposit address per chain, and its deposits. */
import { Controller, Get, Inject, Query, UseGuards } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { z } from 'zod';
import { DomainError, formatUsd } from '#domain';
import { listDeposits } from '#projections';
import { type DepositChain, depositChains } from '../../../chain-listener/src/index.js';
import { Auth, ApiKeyGuard, type AuthContext } from '../http/auth.guard.js';
import { pageSize } from '../http/schemas.js';
import { parseInput } from '../http/validation.js';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';
import { AssignDepositAddress } from './deposits.handlers.js';

export const DepositAddressQuery = z.strictObject({ chain: z.string().min(1).max(32) });
export const DepositsQuery = z.strictObject({ limit: pageSize(1000, 100) });

@Controller('api/v1')
export class DepositsController {
  private readonly chains: ReadonlyMap<string, DepositChain>;
  private readonly byId: ReadonlyMap<number, DepositChain>;

  constructor(
    private readonly commands: CommandBus,
    @Inject(CORE) private readonly core: Core,
  ) {
    this.chains = depositChains(core.config.chains);
    this.byId = new Map([...this.chains.values()].map((c) => [c.chainId, c]));
  }

  /** An unknown chain is a bad parameter value, not a missing resource: 400 invalid_request, naming the accepted ones. */
  @Get('deposit-address')
  @UseGuards(ApiKeyGuard)
  async depositAddress(@Auth() auth: AuthContext, @Query() query: unknown) {
    const { chain: slug } = parseInput(DepositAddressQuery, query, 'query');
    const chain = this.chains.get(slug);
    if (!chain) {
      throw new DomainError(
        'invalid_request',
        this.chains.size === 0
          ? 'no chain takes deposits on this instance (NEXO_CHAINS is not set): an address here would never be credited'
          : `chain must be one of: ${[...this.chains.keys()].join(', ')}`,
      );
    }
    const { address } = await this.commands.execute(new AssignDepositAddress(auth.accountId));
    return {
      ok: true,
      chain: chain.slug,
      address,
      tokens: chain.tokens.map((t) => ({ symbol: t.symbol, contract: t.contract, decimals: t.decimals })),
      confirmations: chain.confirmations,
    };
  }

  @Get('deposits')
  @UseGuards(ApiKeyGuard)
  async deposits(@Auth() auth: AuthContext, @Query() query: unknown) {
    const { limit } = parseInput(DepositsQuery, query, 'query');
    await this.core.caughtUp();
    const deposits = listDeposits(this.core.readDb, auth.accountId, limit).map((d) => {
      const chain = this.byId.get(d.chainId);
      return {
        chain: chain?.slug ?? String(d.chainId),
        token: chain?.tokens.find((t) => t.contract.toLowerCase() === d.token.toLowerCase())?.symbol ?? d.token,
        tx_hash: d.txHash,
        amount: formatUsd(d.amount),
        status: d.status,
        block_number: d.blockNumber,
        credited_at: d.creditedAt,
        ...(d.reversedAt === undefined ? {} : { reversed_at: d.reversedAt }),
      };
    });
    return { ok: true, deposits };
  }
}
