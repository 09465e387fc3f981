/**
 * `ledger export --account <id> --month YYYY-MM [--format csv|json]`: the
 * month's statement with opening and closing balance, from the live ledger
 * read model. Where a file has no ledger read model (a fresh EventStoreDB
 * instance), the account's stream is folded in memory instead, with the same
 * projection, so the figures are the same either way.
 */
import Database from 'better-sqlite3';
import { accountStream } from '#domain';
import { createTables, type LedgerStatement, moneyProjection, nextMonth, readCheckpoint, statement } from '#projections';
import { usd } from './format.js';
import { type LedgerContext, requireAccount } from './ledger-context.js';
import { UsageError } from './errors.js';

export type ExportFormat = 'csv' | 'json';

async function statementFromStream(ctx: LedgerContext, accountId: string, month: string): Promise<LedgerStatement> {
  const mem = new Database(':memory:');
  try {
    createTables(mem, moneyProjection);
    const writer = moneyProjection.writer(mem, '');
    const handles = new Set(moneyProjection.handles);
    for await (const e of ctx.store.readStream(accountStream(accountId))) if (handles.has(e.type)) writer.apply(e);
    writer.flush();
    return statement(mem, accountId, month);
  } finally {
    mem.close();
  }
}

const csvCell = (v: string): string => (/[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

export function renderStatement(s: LedgerStatement, format: ExportFormat): string {
  if (format === 'json') {
    return `${JSON.stringify(
      {
        account_id: s.accountId,
        month: s.month,
        currency: 'USD',
        opening_balance: usd(s.openingBalance),
        closing_balance: usd(s.closingBalance),
        lines: s.lines.map((l) => ({ at: l.at, type: l.type, amount: usd(l.amount), balance_after: usd(l.balanceAfter), ref: l.ref })),
      },
      null,
      2,
    )}\n`;
  }
  // Opening and closing are rows of the same table, so one CSV holds the whole statement.
  const rows = [
    ['at', 'type', 'amount', 'balance_after', 'ref'],
    [`${s.month}-01T00:00:00.000Z`, 'opening', '', usd(s.openingBalance), ''],
    ...s.lines.map((l) => [l.at, l.type, usd(l.amount), usd(l.balanceAfter), l.ref]),
    [`${nextMonth(s.month)}-01T00:00:00.000Z`, 'closing', '', usd(s.closingBalance), ''],
  ];
  // Records end in CRLF (RFC 4180), as spreadsheets and CSV libraries expect.
  return rows.map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

export async function exportCommand(
  ctx: LedgerContext,
  options: { account?: string; month?: string; format?: string },
): Promise<LedgerStatement> {
  if (options.account === undefined || options.account === '') throw new UsageError('export needs --account <id>');
  if (options.month === undefined || !/^\d{4}-(0[1-9]|1[0-2])$/.test(options.month)) throw new UsageError('export needs --month YYYY-MM');
  const format = options.format ?? 'csv';
  if (format !== 'csv' && format !== 'json') throw new UsageError(`--format must be csv or json, not ${format}`);
  await requireAccount(ctx, options.account);
  const live = readCheckpoint(ctx.db, moneyProjection.name);
  const s =
    live !== undefined && live.version === moneyProjection.version
      ? statement(ctx.db, options.account, options.month)
      : await statementFromStream(ctx, options.account, options.month);
  ctx.out(renderStatement(s, format));
  return s;
}
