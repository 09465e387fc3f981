/**
 * What each event means to the outside: the relay's routing. One place
 * decides which facts leave the log, on which topic, under which key.
 */
import { TOPICS, type Publication } from '#bus';
import { trimOldest } from '#collections';
import type { AccountEventOf, Carrier, Channel, OtpEventOf } from '#domain';
import type { RecordedEvent } from '#eventstore';
import type { DispatchMessage, SettlementMessage, WebhookMessage } from './messages.js';

const ACCOUNT = 'account-';
const OTP = 'otp-';

function accountIdOf(e: RecordedEvent): string | undefined {
  if (e.streamId.startsWith(ACCOUNT)) return e.streamId.slice(ACCOUNT.length);
  const meta = e.metadata?.accountId;
  return typeof meta === 'string' ? meta : undefined;
}

const webhook = (accountId: string, value: WebhookMessage): Publication => ({ topic: TOPICS.webhooks, message: { key: accountId, value } });
const settle = (value: SettlementMessage): Publication => ({ topic: TOPICS.settlement, message: { key: value.accountId, value } });

/** OTPs whose facts the relay remembers: far more than are ever in flight within the expiry window. */
const FACTS_REMEMBERED = 200_000;

/**
 * The relay's routing, for every topic or for `topics` only. It reads the log
 * in order, so it has seen each OTP's request before its settlement and can
 * put carrier and channel on the webhook itself, instead of the webhook sender
 * racing the read models for them.
 */
export function createRelayRoute(topics?: ReadonlySet<string>): (e: RecordedEvent) => Publication[] {
  const facts = new Map<string, { carrier: Carrier; channel: Channel }>();
  const remember = (otpId: string, f: { carrier: Carrier; channel: Channel }) => {
    facts.set(otpId, f);
    trimOldest(facts, FACTS_REMEMBERED);
  };
  const settledFacts = (otpId: string) => {
    const f = facts.get(otpId);
    facts.delete(otpId);
    return f ?? {};
  };
  // Facts are only for webhooks: a relay for topics without them (the one beside the webhook
  // thread's) keeps none.
  const route: (e: RecordedEvent) => Publication[] =
    !topics || topics.has(TOPICS.webhooks) ? (e) => relayRoute(e, remember, settledFacts) : (e) => relayRoute(e, () => undefined, () => ({}));
  // A relay for some topics only: the others are another relay's.
  return topics ? (e) => route(e).filter((p) => topics.has(p.topic)) : route;
}

function relayRoute(
  e: RecordedEvent,
  remember: (otpId: string, f: { carrier: Carrier; channel: Channel }) => void,
  settledFacts: (otpId: string) => { carrier?: Carrier; channel?: Channel },
): Publication[] {
  const accountId = accountIdOf(e);
  if (!accountId) return [];
  switch (e.type) {
    case 'OtpRequested': {
      const d = e.data as AccountEventOf<'OtpRequested'>['data'];
      remember(d.otpId, { carrier: d.carrier, channel: d.channel });
      const dispatch: DispatchMessage = {
        otpId: d.otpId,
        accountId,
        phone: d.phone,
        phoneHash: d.phoneHash,
        carrier: d.carrier,
        channel: d.channel,
        auto: d.auto ?? false,
        code: d.code,
        template: d.template,
        at: d.at,
      };
      const out: Publication[] = [{ topic: TOPICS.dispatch, message: { key: d.phoneHash, value: dispatch } }];
      if (d.webhookUrl) out.push(webhook(accountId, { kind: 'target', otpId: d.otpId, accountId, url: d.webhookUrl }));
      return out;
    }
    case 'WebhookConfigured': {
      const d = e.data as AccountEventOf<'WebhookConfigured'>['data'];
      return [webhook(accountId, { kind: 'account', accountId, url: d.url, secret: d.secret, position: Number(e.position) })];
    }
    case 'WebhookRemoved':
      return [webhook(accountId, { kind: 'account_removed', accountId, position: Number(e.position) })];
    case 'Routed': {
      if (!e.streamId.startsWith(OTP)) return [];
      const d = e.data as OtpEventOf<'Routed'>['data'];
      const otpId = e.streamId.slice(OTP.length);
      return [
        webhook(accountId, {
          kind: 'event',
          eventId: e.id,
          type: 'otp.routed',
          otpId,
          accountId,
          position: Number(e.position),
          at: d.at,
          carrier: d.carrier,
          channel: d.channel,
          // Not the upstream: customers are not told which upstreams carry their codes.
          extra: {},
        }),
      ];
    }
    case 'RouteFailed': {
      const d = e.data as OtpEventOf<'RouteFailed'>['data'];
      if (!d.final) return [];
      return [settle({ kind: 'route_failed', otpId: e.streamId.slice(OTP.length), accountId, retryable: d.retryable, at: d.at })];
    }
    case 'ReceiptReceived': {
      const d = e.data as OtpEventOf<'ReceiptReceived'>['data'];
      return [settle({ kind: 'receipt', otpId: e.streamId.slice(OTP.length), accountId, status: d.status, at: d.at })];
    }
    case 'Expired':
      return [settle({ kind: 'expired', otpId: e.streamId.slice(OTP.length), accountId, at: (e.data as { at: string }).at })];
    case 'Delivered': {
      const d = e.data as AccountEventOf<'Delivered'>['data'];
      return [
        webhook(accountId, { kind: 'event', eventId: e.id, type: 'otp.delivered', otpId: d.otpId, accountId, position: Number(e.position), at: d.at, ...settledFacts(d.otpId), extra: { via: d.via } }),
      ];
    }
    case 'Refunded': {
      const d = e.data as AccountEventOf<'Refunded'>['data'];
      return [
        webhook(accountId, {
          kind: 'event',
          eventId: e.id,
          type: 'otp.refunded',
          otpId: d.otpId,
          accountId,
          position: Number(e.position),
          at: d.at,
          ...settledFacts(d.otpId),
          // What was given back: money (`balance`) or a free test credit, as the send's answer said.
          extra: { reason: d.reason, amount: d.amount, funded_by: d.fundedBy },
        }),
      ];
    }
    default:
      return [];
  }
}
