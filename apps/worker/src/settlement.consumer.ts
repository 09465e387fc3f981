/**
 * Settlement: the only place a charge becomes final. A delivered receipt, an
 * answered call or customer feedback delivers; a final failure or expiry
 * refunds. Messages come keyed by account; within a batch each OTP's messages
 * run in order and different OTPs at once, so an account's settlements meet
 * in the command path and go as one append to its stream. The account decider
 * makes every repeat a no-op (I2), and a receipt after a refund moves no money.
 * A failure receipt waits while another routed attempt of the OTP may still
 * deliver, or has: that attempt's receipt, or expiry, settles it.
 */
import { forEachKeyInOrder, TOPICS, type Consumer } from '#bus';
import { trimOldest } from '#collections';
import { type AccountCommand, accountDecider, accountStream, otpDecider, refundWaits, otpStream, type ReceiptStatus } from '#domain';
import { SettlementMessage } from './messages.js';
import type { WorkerDeps } from './worker.deps.js';

function commandFor(m: SettlementMessage): AccountCommand | undefined {
  if (m.kind === 'expired') return { type: 'RefundOtp', otpId: m.otpId, reason: 'expired', at: m.at };
  if (m.kind === 'route_failed') return { type: 'RefundOtp', otpId: m.otpId, reason: m.retryable ? 'undelivered' : 'rejected', at: m.at };
  const byStatus: Record<ReceiptStatus, AccountCommand | undefined> = {
    delivered: { type: 'MarkDelivered', otpId: m.otpId, via: 'receipt', at: m.at },
    answered: { type: 'MarkDelivered', otpId: m.otpId, via: 'voice_answer', at: m.at },
    undelivered: { type: 'RefundOtp', otpId: m.otpId, reason: 'undelivered', at: m.at },
    unanswered: { type: 'RefundOtp', otpId: m.otpId, reason: 'undelivered', at: m.at },
    expired: { type: 'RefundOtp', otpId: m.otpId, reason: 'undelivered', at: m.at },
    rejected: { type: 'RefundOtp', otpId: m.otpId, reason: 'rejected', at: m.at },
    // Accepted by the SMSC says nothing about the handset: wait for more.
    accepted: undefined,
  };
  return byStatus[m.status];
}

/**
 * OTPs a settler remembers settling, so that the messages that follow for them (the relay's copy of
 * a receipt it settled early, a duplicate) are dropped without a command. The relay's message comes
 * milliseconds after early settlement, and 4,096 OTPs are two seconds at 2,000 settled per second;
 * a message for an OTP forgotten by then takes the command path, whose decider makes it a no-op (I2).
 */
const REMEMBERED_SETTLEMENTS = 4_096;

/** Settles one message: what the settlement consumer does with each (and the receipts consumer's early settlement, see `ReceiptsOptions.settleNow`). */
export function settler(deps: WorkerDeps): (m: SettlementMessage) => Promise<void> {
  // Only OTPs whose Delivered or Refunded this settler appended: the append was durable when it
  // resolved, and an OTP settles once (I2), so any later message for it would decide nothing.
  const settled = new Set<string>();
  const remember = (otpId: string) => {
    settled.add(otpId);
    trimOldest(settled, REMEMBERED_SETTLEMENTS);
  };
  // The relay's message usually comes while the early settlement of the same receipt is still being
  // appended: it waits for that one's outcome instead of queueing a command that would decide nothing.
  const inFlight = new Map<string, Promise<void>>();
  const settle = async (m: SettlementMessage) => {
    const command = commandFor(m);
    if (!command) return;
    // A failure receipt refunds only when no routed attempt of the OTP can still deliver, or has
    // (see refundWaits).
    if (m.kind === 'receipt' && command.type === 'RefundOtp' && refundWaits((await deps.runner.peek(otpStream(m.otpId), otpDecider)).state)) return;
    const stream = accountStream(m.accountId);
    const charge = deps.runner.cached(stream, accountDecider)?.open.get(m.otpId);
    const { events } = await deps.runner.handle(stream, accountDecider, command);
    for (const e of events) {
      if (e.type === 'Delivered') deps.metrics?.settled?.(m.otpId, { type: 'Delivered', via: e.data.via }, charge);
      else if (e.type === 'Refunded') deps.metrics?.settled?.(m.otpId, { type: 'Refunded', reason: e.data.reason }, charge);
      if ((e.type === 'Delivered' || e.type === 'Refunded') && e.data.otpId === m.otpId) remember(m.otpId);
    }
  };
  return async (m: SettlementMessage) => {
    for (let before = inFlight.get(m.otpId); before !== undefined; before = inFlight.get(m.otpId)) await before.catch(() => undefined);
    if (settled.has(m.otpId)) return;
    const settling = settle(m);
    inFlight.set(m.otpId, settling);
    try {
      await settling;
    } finally {
      if (inFlight.get(m.otpId) === settling) inFlight.delete(m.otpId);
    }
  };
}

/** `settle`: the settler the receipts consumer settles early with, if any, so that both know what it settled. */
export async function startSettlement(deps: WorkerDeps, settle: (m: SettlementMessage) => Promise<void> = settler(deps)): Promise<Consumer> {
  return deps.bus.consume<unknown>('nexo-settlement', TOPICS.settlement, (batch) => {
    const parsed = new Map(batch.map((msg) => [msg, SettlementMessage.parse(msg.value)]));
    return forEachKeyInOrder(batch, (msg) => settle(parsed.get(msg)!), undefined, (msg) => parsed.get(msg)!.otpId);
  });
}
