/**
 * Event builders and a temp-file store for the projection tests. Values pass
 * the domain's zod schemas, so the tests feed stored shapes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Carrier, Channel, FundedBy, RefundReason } from '#domain';
import { type EventData, SqliteEventStore } from '#eventstore';

export const PRICE = 22_000n;
export const acct = (id: string): string => `account-${id}`;
export const otpStream = (otpId: string): string => `otp-${otpId}`;
export const hex64 = (n: number | string): string => String(n).padStart(64, '0');
export const txHash = (n: number): string => `0x${n.toString(16).padStart(64, '0')}`;
export const isoAt = (base: string, seconds: number): string => new Date(Date.parse(base) + seconds * 1000).toISOString();

export const opened = (accountId: string, testCredits = 0, at = '2026-03-01T00:00:00.000Z'): EventData => ({
  type: 'AccountOpened',
  data: { accountId, name: `Exchange ${accountId}`, testCredits, at },
});

export const credited = (tx: number, amount: bigint, at: string, logIndex = 0): EventData => ({
  type: 'DepositCredited',
  data: {
    chainId: 56,
    token: `0x${'d'.repeat(40)}`,
    txHash: txHash(tx),
    logIndex,
    blockNumber: 1000 + tx,
    blockHash: `0x${'b'.repeat(64)}`,
    amount: amount.toString(),
    at,
  },
});

export const reversed = (tx: number, at: string, logIndex = 0): EventData => ({
  type: 'DepositReversed',
  data: { chainId: 56, txHash: txHash(tx), logIndex, reason: 'block no longer canonical', at },
});

export interface SendOptions {
  carrier?: Carrier;
  channel?: Channel;
  fundedBy?: FundedBy;
  price?: bigint;
}

export const sent = (otpId: string, at: string, o: SendOptions = {}): EventData[] => [
  {
    type: 'OtpRequested',
    data: {
      otpId,
      phone: 'k1:c2VhbGVkLXBob25l',
      phoneHash: hex64('a1'),
      phoneMasked: '+8491****678',
      carrier: o.carrier ?? 'vinaphone',
      channel: o.channel ?? 'sms',
      code: 'k1:c2VhbGVkLWNvZGU',
      at,
    },
  },
  { type: 'Charged', data: { otpId, amount: (o.price ?? PRICE).toString(), fundedBy: o.fundedBy ?? 'balance', at } },
];

export const routed = (otpId: string, at: string, attempt = 1): EventData => ({
  type: 'Routed',
  data: { attempt, provider: 'sim', carrier: 'vinaphone', channel: 'sms', providerMessageId: `m-${otpId}-${attempt}`, at },
});

export const receipt = (otpId: string, at: string): EventData => ({
  type: 'ReceiptReceived',
  data: { providerMessageId: `m-${otpId}-1`, status: 'delivered', raw: 'stat:DELIVRD', at },
});

export const delivered = (otpId: string, at: string): EventData => ({ type: 'Delivered', data: { otpId, via: 'receipt', at } });

export const refunded = (otpId: string, at: string, o: { fundedBy?: FundedBy; price?: bigint; reason?: RefundReason } = {}): EventData => ({
  type: 'Refunded',
  data: { otpId, amount: (o.price ?? PRICE).toString(), fundedBy: o.fundedBy ?? 'balance', reason: o.reason ?? 'undelivered', at },
});

export interface TempStore {
  dir: string;
  file: string;
  store: SqliteEventStore;
  /** Appends without an expected revision: these tests write the log directly, bypassing the deciders. */
  put(stream: string, ...events: (EventData | EventData[])[]): Promise<void>;
  dispose(): Promise<void>;
}

export function tempStore(prefix = 'nexo-proj-'): TempStore {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const file = join(dir, 'nexo.db');
  const store = SqliteEventStore.open(file);
  return {
    dir,
    file,
    store,
    async put(stream, ...events) {
      await store.append(stream, events.flat(), 'any');
    },
    async dispose() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
