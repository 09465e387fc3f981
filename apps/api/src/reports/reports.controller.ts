/** Delivery stats (per account and public) and the ledger statement, JSON or CSV. */
import { Controller, Get, Headers, Inject, Query, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { formatUsd } from '#domain';
import { Auth, ApiKeyGuard, type AuthContext } from '../http/auth.guard.js';
import { currentMonth, MonthQuery } from '../http/schemas.js';
import { parseInput } from '../http/validation.js';
import { preferredType } from '../http/negotiation.js';
import type { Core } from '../core/core.js';
import { CORE } from '../core/tokens.js';

const CSV_HEADER = 'at,type,amount,balance_after,ref';
/** What the statement comes as, JSON first: the answer to no Accept header or to any type. */
const LEDGER_TYPES = ['application/json', 'text/csv'] as const;

@Controller('api/v1')
export class ReportsController {
  constructor(@Inject(CORE) private readonly core: Core) {}

  @Get('stats')
  @UseGuards(ApiKeyGuard)
  async stats(@Auth() auth: AuthContext, @Query() query: unknown) {
    const month = parseInput(MonthQuery, query, 'query').month ?? currentMonth(this.core.clock());
    await this.core.caughtUp();
    return { ok: true, month, ...this.core.reads.stats(month, auth.accountId) };
  }

  @Get('stats/public')
  async publicStats(@Query() query: unknown) {
    const month = parseInput(MonthQuery, query, 'query').month ?? currentMonth(this.core.clock());
    return { ok: true, month, ...this.core.reads.stats(month) };
  }

  @Get('ledger')
  @UseGuards(ApiKeyGuard)
  async ledger(
    @Auth() auth: AuthContext,
    @Query() query: unknown,
    @Headers('accept') accept: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const month = parseInput(MonthQuery, query, 'query').month ?? currentMonth(this.core.clock());
    await this.core.caughtUp();
    const lines = this.core.reads.statement(auth.accountId, month).map((l) => ({
      at: l.at,
      type: l.type,
      amount: formatUsd(l.amount),
      balance_after: formatUsd(l.balanceAfter),
      ref: l.ref,
    }));
    // The answer depends on Accept: caches must keep the two apart.
    void reply.header('vary', 'Accept');
    // JSON unless the client prefers CSV; an Accept that takes neither gets JSON too, as before negotiation.
    if (preferredType(accept, LEDGER_TYPES) === 'text/csv') {
      void reply.type('text/csv; charset=utf-8');
      // Records end in CRLF (RFC 4180), as spreadsheets and CSV libraries expect.
      return [CSV_HEADER, ...lines.map((l) => [l.at, l.type, l.amount, l.balance_after, csvCell(l.ref)].join(','))].join('\r\n') + '\r\n';
    }
    return { ok: true, month, lines };
  }
}

/** Refs are ids or tx hashes, but quote defensively: a cell starting with = + - @ is a formula in spreadsheets. */
function csvCell(value: string): string {
  const safe = /^[=+\-@]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
