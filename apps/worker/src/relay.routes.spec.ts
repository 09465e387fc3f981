import { TOPICS } from '#bus';
import type { RecordedEvent } from '#eventstore';
import { createRelayRoute } from './relay.routes.js';

const recorded = (streamId: string, type: string, data: unknown, position: bigint): RecordedEvent => ({
  streamId,
  revision: position,
  position,
  id: `evt-${position}`,
  type,
  data,
  metadata: undefined,
  created: '2026-11-26T09:00:00.000Z',
});

describe('relay routing', () => {
  it('hands the webhook sender the account configuration in log order with the OTP events, under the account key', () => {
    const route = createRelayRoute(new Set([TOPICS.webhooks]));
    const configured = route(recorded('account-acc_1', 'WebhookConfigured', { url: 'https://hooks.example/x', secret: 'k1:sealed', at: '2026-11-26T09:00:00.000Z' }, 1n));
    expect(configured).toEqual([
      { topic: TOPICS.webhooks, message: { key: 'acc_1', value: { kind: 'account', accountId: 'acc_1', url: 'https://hooks.example/x', secret: 'k1:sealed', position: 1 } } },
    ]);
    const delivered = route(recorded('account-acc_1', 'Delivered', { otpId: 'otp_1', via: 'receipt', at: '2026-11-26T09:00:01.000Z' }, 2n));
    expect(delivered.map((p) => [p.topic, p.message.key, (p.message.value as { kind: string }).kind])).toEqual([[TOPICS.webhooks, 'acc_1', 'event']]);
  });

  it('keeps the configuration off every other topic', () => {
    const route = createRelayRoute(new Set([TOPICS.dispatch, TOPICS.settlement]));
    expect(route(recorded('account-acc_1', 'WebhookConfigured', { url: 'https://hooks.example/x', secret: 'k1:sealed', at: '2026-11-26T09:00:00.000Z' }, 1n))).toEqual([]);
  });

  it("puts the account's templates from the OTP's request on its dispatch, and none when the request has none", () => {
    const route = createRelayRoute(new Set([TOPICS.dispatch]));
    const request = { otpId: 'otp_1', phone: 'k1:p', phoneHash: 'a'.repeat(64), phoneMasked: '+8491****678', carrier: 'vinaphone', channel: 'sms', code: 'k1:c', at: '2026-11-26T09:00:00.000Z' };
    const dispatched = (data: object) => route(recorded('account-acc_1', 'OtpRequested', data, 1n)).map((p) => (p.message.value as { template?: unknown }).template);
    expect(dispatched({ ...request, template: { sms: 'ACME {code}' } })).toEqual([{ sms: 'ACME {code}' }]);
    expect(dispatched(request)).toEqual([undefined]);
  });
});
