import { messageKey, refundWaits, type OtpCommand, otpDecider } from './otp.decider.js';
import type { OtpEvent } from './otp.events.js';
import { OtpEvent as OtpEventSchema } from './otp.events.js';
import type { ReceiptStatus } from './otp.events.js';
import { givenWhenThen } from './testing/given-when-then.js';

const given = givenWhenThen(otpDecider);

const T0 = '2025-03-01T00:00:00.000Z';
const at = (seconds: number): string => new Date(Date.parse(T0) + seconds * 1000).toISOString();

const routedData = (attempt: number, provider = 'sim', when = at(attempt)) => ({
  attempt,
  provider,
  carrier: 'viettel' as const,
  channel: 'sms' as const,
  providerMessageId: `${provider}-msg-${attempt}`,
  at: when,
});
const routed = (attempt: number, provider?: string): OtpEvent => ({ type: 'Routed', data: routedData(attempt, provider) });
const recordRouted = (attempt: number, provider?: string): OtpCommand => ({ type: 'RecordRouted', ...routedData(attempt, provider) });

const failedData = (attempt: number, retryable = true, provider = 'sim') => ({
  attempt,
  provider,
  error: 'upstream timeout',
  retryable,
  at: at(attempt),
});
const routeFailed = (attempt: number, retryable?: boolean): OtpEvent => ({ type: 'RouteFailed', data: failedData(attempt, retryable) });
const recordRouteFailed = (attempt: number, retryable?: boolean): OtpCommand => ({
  type: 'RecordRouteFailed',
  ...failedData(attempt, retryable),
});

/** A fixture's message ids start with their upstream's name: `sim-msg-1` came from `sim`. */
const providerOf = (providerMessageId: string): string => providerMessageId.split('-')[0];
const receiptData = (providerMessageId: string, status: ReceiptStatus, seconds = 30, raw = `stat:${status.toUpperCase()}`, provider = providerOf(providerMessageId)) => ({
  provider,
  providerMessageId,
  status,
  raw,
  at: at(seconds),
});
const receipt = (id: string, status: ReceiptStatus, seconds?: number, provider?: string): OtpEvent => ({
  type: 'ReceiptReceived',
  data: receiptData(id, status, seconds, undefined, provider),
});
const recordReceipt = (id: string, status: ReceiptStatus, seconds?: number, raw?: string, provider?: string): OtpCommand => ({
  type: 'RecordReceipt',
  ...receiptData(id, status, seconds, raw, provider),
});

const expired = (seconds = 300): OtpEvent => ({ type: 'Expired', data: { at: at(seconds) } });
const expire = (seconds = 300): OtpCommand => ({ type: 'Expire', at: at(seconds) });

describe('fixtures', () => {
  it('build events that pass the stored schemas', () => {
    for (const e of [routed(1), routeFailed(1), receipt('sim-msg-1', 'delivered'), expired()]) expect(OtpEventSchema.parse(e)).toEqual(e);
  });
});

describe('route and route failed: attempts in order, redelivery appends nothing', () => {
  it('records the first attempt', () => {
    const state = given([]).when(recordRouted(1)).then([routed(1)]);
    expect(state.lastAttempt).toBe(1);
    expect(state.routed.get(messageKey('sim', 'sim-msg-1'))).toEqual({ attempt: 1, provider: 'sim', providerMessageId: 'sim-msg-1' });
  });

  it('records a failed first attempt, then the failover as attempt 2', () => {
    const afterFailure = given([]).when(recordRouteFailed(1)).then([routeFailed(1)]);
    expect(afterFailure.failures).toBe(1);
    const state = given([routeFailed(1)]).when(recordRouted(2, 'backup')).then([routed(2, 'backup')]);
    expect(state.lastAttempt).toBe(2);
    expect(state.routed.get(messageKey('backup', 'backup-msg-2'))).toEqual({ attempt: 2, provider: 'backup', providerMessageId: 'backup-msg-2' });
  });

  it('records consecutive failures', () => {
    const state = given([routeFailed(1), routeFailed(2)]).when(recordRouteFailed(3, false)).then([routeFailed(3, false)]);
    expect(state.failures).toBe(3);
  });

  it('refuses an attempt that skips one', () => {
    given([]).when(recordRouted(2)).then('invalid_command');
    given([routeFailed(1)]).when(recordRouteFailed(3)).then('invalid_command');
  });

  it('a redelivered Routed appends nothing', () => {
    given([routed(1)]).when(recordRouted(1)).then([]);
  });

  it('a redelivered RouteFailed appends nothing, even after a later attempt', () => {
    given([routeFailed(1)]).when(recordRouteFailed(1)).then([]);
    given([routeFailed(1), routed(2)]).when(recordRouteFailed(1)).then([]);
  });

  it('an attempt has one outcome: the first one recorded stands', () => {
    given([routeFailed(1)]).when(recordRouted(1)).then([]);
    given([routed(1)]).when(recordRouteFailed(1)).then([]);
  });
});

describe('receipts', () => {
  const routedOnce = [routed(1)];

  it('records a receipt for a routed message', () => {
    const state = given(routedOnce).when(recordReceipt('sim-msg-1', 'delivered')).then([receipt('sim-msg-1', 'delivered')]);
    expect(state.lastReceipt).toBe('delivered');
  });

  it('a duplicate receipt is a no-op, even with other raw text or time', () => {
    const history = [...routedOnce, receipt('sim-msg-1', 'delivered')];
    given(history).when(recordReceipt('sim-msg-1', 'delivered')).then([]);
    given(history).when(recordReceipt('sim-msg-1', 'delivered', 95, 'id:1 stat:DELIVRD')).then([]);
  });

  it('records each new status of the same message', () => {
    const history = [...routedOnce, receipt('sim-msg-1', 'accepted', 10)];
    const state = given(history).when(recordReceipt('sim-msg-1', 'delivered', 20)).then([receipt('sim-msg-1', 'delivered', 20)]);
    expect(state.lastReceipt).toBe('delivered');
  });

  it('records a late receipt for an earlier attempt after a failover', () => {
    given([routed(1), routed(2, 'backup')]).when(recordReceipt('sim-msg-1', 'delivered', 200)).then([receipt('sim-msg-1', 'delivered', 200)]);
  });

  it('still records receipts that arrive after expiry: they are facts, settlement decides what they mean', () => {
    const state = given([...routedOnce, expired()])
      .when(recordReceipt('sim-msg-1', 'delivered', 400))
      .then([receipt('sim-msg-1', 'delivered', 400)]);
    expect(state.expired).toBe(true);
    expect(state.lastReceipt).toBe('delivered');
  });
});

describe('receipts that name their OTP (an upstream echoing our reference): checked against its routes', () => {
  const claimed = (id: string, status: ReceiptStatus, provider: string, attempt?: number): OtpCommand => ({
    ...recordReceipt(id, status, undefined, undefined, provider),
    claim: attempt === undefined ? { provider } : { provider, attempt },
  } as OtpCommand);
  const failedVia = (attempt: number, provider: string): OtpEvent => ({ type: 'RouteFailed', data: failedData(attempt, true, provider) });

  it('records a receipt from the provider and attempt the message was routed through; the claim is not stored', () => {
    given([routed(1, 'acme')]).when(claimed('acme-msg-1', 'delivered', 'acme', 1)).then([receipt('acme-msg-1', 'delivered')]);
    given([routed(1, 'acme')]).when(claimed('acme-msg-1', 'delivered', 'acme')).then([receipt('acme-msg-1', 'delivered')]);
  });

  it('records a receipt that raced its Routed (the attempt is not recorded yet), as before', () => {
    given([]).when(claimed('acme-msg-1', 'delivered', 'acme', 1)).then([receipt('acme-msg-1', 'delivered')]);
    given([routeFailed(1)]).when(claimed('acme-msg-2', 'delivered', 'acme', 2)).then([receipt('acme-msg-2', 'delivered')]);
  });

  it('records a late delivery for an attempt that failed ambiguously through the same provider (a timed-out submit may still deliver)', () => {
    given([failedVia(1, 'acme'), routed(2, 'backup')]).when(claimed('acme-x', 'delivered', 'acme', 1)).then([receipt('acme-x', 'delivered')]);
  });

  it('refuses a message id routed through another provider, claimed by one that made no attempt of the OTP, whatever attempt it claims', () => {
    const e = given([routed(1, 'acme')]).when(claimed('acme-msg-1', 'delivered', 'evil', 1)).then('invalid_command');
    expect(e.details).toMatchObject({ reason: 'receipt_claim', provider: 'evil', providerMessageId: 'acme-msg-1' });
    given([routed(1, 'acme')]).when(claimed('acme-msg-1', 'delivered', 'evil')).then('invalid_command');
  });

  it('refuses an attempt recorded as made through another provider, routed or failed', () => {
    given([routed(1, 'acme')]).when(claimed('evil-1', 'delivered', 'evil', 1)).then('invalid_command');
    given([failedVia(1, 'acme'), routed(2, 'backup')]).when(claimed('evil-1', 'delivered', 'evil', 1)).then('invalid_command');
  });

  it('refuses an attempt routed under another message id, and a message id that is another attempt', () => {
    given([routed(1, 'acme')]).when(claimed('acme-other', 'delivered', 'acme', 1)).then('invalid_command');
    given([routed(1, 'acme'), routed(2, 'acme')]).when(claimed('acme-msg-1', 'delivered', 'acme', 2)).then('invalid_command');
  });

  it('a duplicate of a recorded receipt stays a no-op', () => {
    given([routed(1, 'acme'), receipt('acme-msg-1', 'delivered')]).when(claimed('acme-msg-1', 'delivered', 'acme', 1)).then([]);
  });
});

describe('a message is its upstream and its id: two upstreams may hand out the same id', () => {
  const routedAs = (attempt: number, provider: string, providerMessageId: string): OtpEvent => ({ type: 'Routed', data: { ...routedData(attempt, provider), providerMessageId } });
  const stateOf = (events: OtpEvent[]) => events.reduce(otpDecider.evolve, otpDecider.initialState());
  const failedOver = [routedAs(1, 'acme', '42'), routedAs(2, 'backup', '42')];

  it('a claimed receipt for the earlier attempt counts after the failover got the same id from another upstream', () => {
    given(failedOver)
      .when({ ...recordReceipt('42', 'delivered', 60, undefined, 'acme'), claim: { provider: 'acme', attempt: 1 } } as OtpCommand)
      .then([receipt('42', 'delivered', 60, 'acme')]);
  });

  it("the earlier upstream's failure does not refund while the later upstream's message of that id is in flight", () => {
    expect(refundWaits(stateOf([...failedOver, receipt('42', 'undelivered', 60, 'acme')]))).toBe(true);
    expect(refundWaits(stateOf([...failedOver, receipt('42', 'undelivered', 60, 'acme'), receipt('42', 'undelivered', 90, 'backup')]))).toBe(false);
  });

  it("each upstream's receipt of that id is its own fact; a repeat of either is a no-op", () => {
    const history = [...failedOver, receipt('42', 'delivered', 60, 'acme')];
    given(history).when(recordReceipt('42', 'delivered', 70, undefined, 'backup')).then([receipt('42', 'delivered', 70, 'backup')]);
    given(history).when(recordReceipt('42', 'delivered', 70, undefined, 'acme')).then([]);
  });

  it('the earlier upstream may claim that id without naming its attempt: it made one', () => {
    given(failedOver)
      .when({ ...recordReceipt('42', 'undelivered', 60, undefined, 'acme'), claim: { provider: 'acme' } } as OtpCommand)
      .then([receipt('42', 'undelivered', 60, 'acme')]);
  });

  it('a third upstream claiming that id is still refused', () => {
    given(failedOver).when({ ...recordReceipt('42', 'delivered', 60, undefined, 'evil'), claim: { provider: 'evil' } } as OtpCommand).then('invalid_command');
  });

  it('a receipt cannot claim another upstream than the one it came from', () => {
    given(failedOver).when({ ...recordReceipt('42', 'delivered', 60, undefined, 'acme'), claim: { provider: 'backup', attempt: 2 } } as OtpCommand).then('invalid_command');
  });
});

describe('receipts recorded before they named their upstream', () => {
  const legacy = (id: string, status: ReceiptStatus, seconds?: number): OtpEvent => {
    const { provider: _, ...data } = receiptData(id, status, seconds);
    return { type: 'ReceiptReceived', data };
  };
  const stateOf = (events: OtpEvent[]) => events.reduce(otpDecider.evolve, otpDecider.initialState());

  it('still pass the stored schema', () => {
    expect(OtpEventSchema.parse(legacy('sim-msg-1', 'delivered'))).toEqual(legacy('sim-msg-1', 'delivered'));
  });

  it('belong to the upstream that routed their id: a repeat naming it is a no-op, and refundWaits reads them', () => {
    given([routed(1), legacy('sim-msg-1', 'delivered')]).when(recordReceipt('sim-msg-1', 'delivered', 95)).then([]);
    expect(refundWaits(stateOf([routed(1), legacy('sim-msg-1', 'undelivered')]))).toBe(false);
    expect(refundWaits(stateOf([routeFailed(1), routed(2), legacy('sim-msg-1', 'undelivered')]))).toBe(true);
  });

  it('of an id never routed, a repeat naming its upstream is a no-op too', () => {
    given([legacy('sim-early', 'delivered')]).when(recordReceipt('sim-early', 'delivered', 95)).then([]);
  });

  it('recorded ahead of their id\'s Routed, still end that message for refundWaits, as they did', () => {
    const routedAs = (attempt: number, provider: string, providerMessageId: string): OtpEvent => ({ type: 'Routed', data: { ...routedData(attempt, provider), providerMessageId } });
    expect(refundWaits(stateOf([routedAs(1, 'acme', 'a-1'), legacy('b-2', 'undelivered'), routedAs(2, 'backup', 'b-2'), receipt('a-1', 'undelivered', 60, 'acme')]))).toBe(false);
  });
});

describe('expiry', () => {
  it('expires once', () => {
    const state = given([routed(1)]).when(expire()).then([expired()]);
    expect(state.expired).toBe(true);
  });

  it('a second expiry is a no-op', () => {
    given([routed(1), expired()]).when(expire(600)).then([]);
  });

  it('expires an OTP that was never routed', () => {
    given([routeFailed(1, false)]).when(expire()).then([expired()]);
    given([]).when(expire()).then([expired()]);
  });
});

describe('refundWaits: whether a failure receipt may refund', () => {
  const stateOf = (events: OtpEvent[]) => events.reduce(otpDecider.evolve, otpDecider.initialState());
  it('is false with nothing routed, and once every routed message failed for good', () => {
    expect(refundWaits(stateOf([]))).toBe(false);
    expect(refundWaits(stateOf([routed(1), receipt('sim-msg-1', 'undelivered')]))).toBe(false);
  });
  it('is true while the routed message has no final receipt: a late failure of an attempt failed over from, or only `accepted`', () => {
    expect(refundWaits(stateOf([routeFailed(1), routed(2), receipt('sim-msg-1', 'undelivered')]))).toBe(true);
    expect(refundWaits(stateOf([routed(1), receipt('sim-msg-1', 'accepted')]))).toBe(true);
  });
  it('is true once a message reached the user, whichever receipt settlement takes first', () => {
    expect(refundWaits(stateOf([routed(1), receipt('sim-msg-1', 'delivered')]))).toBe(true);
    expect(refundWaits(stateOf([routed(1), receipt('sim-msg-1', 'delivered'), receipt('sim-msg-1', 'undelivered')]))).toBe(true);
    // An attempt failed as overdue whose receipt still came (tied by its claim), then the next attempt's failure.
    expect(refundWaits(stateOf([routeFailed(1), receipt('sim-late-1', 'delivered'), routed(2), receipt('sim-msg-2', 'undelivered')]))).toBe(true);
  });
});
