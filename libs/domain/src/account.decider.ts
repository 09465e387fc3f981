/**
 * The account decider: every rule that moves money (I1-I5, I7) lives here.
 *
 * `evolve` updates the state object it is given instead of copying it: a busy
 * account holds thousands of open OTPs and copying those maps per event would
 * dominate the send path. Callers that need the previous state must not share
 * it (the command path drops its cached state when an append fails).
 */
import { ExpiryQueue } from '#collections';
import { accountSnapshot } from './account.snapshot.js';
import type { Decider } from './decider.js';
import { DomainError } from './errors.js';
import type { AccountEvent, AccountEventOf, DeliveryProof, FundedBy, RefundReason } from './account.events.js';
import { checkTemplate, describeTemplateProblem, type MessageTemplate } from './message-template.js';
import { type Micros, microsFromDigits, microsToDigits } from './money.js';
import type { Carrier, Channel } from './phone.js';

type Data<T extends AccountEvent['type']> = AccountEventOf<T>['data'];

export type AccountCommand =
  | ({ type: 'OpenAccount'; firstKey?: FirstKey } & Data<'AccountOpened'>)
  | ({ type: 'IssueApiKey' } & Data<'ApiKeyIssued'>)
  | ({ type: 'RevokeApiKey' } & Data<'ApiKeyRevoked'>)
  | ({ type: 'ConfigureWebhook' } & Data<'WebhookConfigured'>)
  | ({ type: 'RemoveWebhook' } & Data<'WebhookRemoved'>)
  /** Per channel: a template sets it, `null` puts the default back, absent leaves it as it is. */
  | { type: 'SetMessageTemplate'; sms?: string | null; voice?: string | null; at: string }
  | ({ type: 'AssignDepositAddress' } & Data<'DepositAddressAssigned'>)
  | ({ type: 'CreditDeposit' } & Data<'DepositCredited'>)
  | ({ type: 'ReverseDeposit' } & Data<'DepositReversed'>)
  /** The OTP's `template` is the account's, added by the decider. */
  /**
   * `testCredits: false`: the phone has had its free sends of the day (across accounts, counted by
   * the API), so only the balance may pay for this one.
   */
  | { type: 'SendOtp'; otp: Omit<Data<'OtpRequested'>, 'template'>; price: Micros; testCredits?: false }
  | { type: 'MarkDelivered'; otpId: string; via: DeliveryProof; at: string }
  | { type: 'RefundOtp'; otpId: string; reason: RefundReason; at: string };

/**
 * The key a signup opens its account with, issued in the same append (an account never exists
 * without the key its customer was shown). A repeat of the same opening, same account and same
 * key, is a retry of a signup whose answer was lost: it counts as done.
 */
export type FirstKey = Omit<Data<'ApiKeyIssued'>, 'at'>;

export interface OpenCharge {
  amount: Micros;
  fundedBy: FundedBy;
  /** What the OTP was sent as (its OtpRequested, appended with the charge): what settlement counts it under. */
  carrier?: Carrier;
  channel?: Channel;
  requestedAt?: string;
}

export interface IdempotencyRecord {
  requestHash: string | undefined;
  otpId: string;
  atMs: number;
}

/**
 * A field added here goes into the snapshot format too (account.snapshot.ts, with a new VERSION):
 * the account property test "snapshots" compares every state read back with the full fold.
 */
export interface AccountState {
  opened: boolean;
  accountId: string;
  balance: Micros;
  testCreditsGranted: number;
  testCreditsLeft: number;
  /** Sends charged to a test credit, refunded ones included (see TEST_ATTEMPTS_PER_CREDIT). */
  testCharges: number;
  /** Balance-funded charges of OTPs not yet delivered or refunded. */
  pending: Micros;
  /** By key id; the hash tells a retry of an issue (same id, same key) from a clash. */
  keys: Map<string, { keyHash: string; revoked: boolean }>;
  webhook: { url: string; secret: string } | undefined;
  /** The account's own message text; undefined while both channels use the defaults. */
  template: MessageTemplate | undefined;
  depositAddresses: Map<string, { address: string; index: number }>;
  /** Keyed by `depositKey`; I4. */
  deposits: Map<string, { amount: Micros; reversed: boolean }>;
  /** Charged OTPs awaiting settlement; I2. */
  open: Map<string, OpenCharge>;
  /**
   * The most recently settled OTPs (at most SETTLED_WINDOW). I2 needs them:
   * without them a settled otpId looks unknown and a repeated SendOtp would
   * charge it again. A window suffices because otpIds are 96-bit random ids
   * that the API generates once per request: a repeat can only be a retry of
   * a command moments old. Bounding it keeps a busy account's state small
   * (a million settled ids would cost ~100 MB).
   */
  settled: Set<string>;
  /** The keys of the last IDEMPOTENCY_MEMORY_MS (20 s) of sends, oldest first. */
  idempotency: Map<string, IdempotencyRecord>;
  /** The OtpRequested just folded, for the Charged that follows it in the same append. */
  requesting: Data<'OtpRequested'> | undefined;
}

/**
 * A refunded send gives its test credit back (I2, I5), so a free account whose sends keep failing
 * (a number that never answers) could send for ever: test credits pay for at most this many sends
 * each, refunded ones included. Delivered codes still use up a credit each.
 */
export const TEST_ATTEMPTS_PER_CREDIT = 3;

/** Active API keys an account may hold at once (each key has its own request rate). */
export const MAX_ACTIVE_KEYS = 20;

/**
 * Keys an account is ever issued, revoked ones included: the account's state, its key list and
 * the api-keys read model keep every key, so issue/revoke cycles would grow them without bound.
 * The cap leaves four years of monthly rotation of all 20 keys, or nineteen of one key weekly.
 */
export const MAX_KEYS_ISSUED = 1_000;

/** Idempotency keys are honoured for at least 24 h (API.md); after 48 h a key is new again. */
export const IDEMPOTENCY_RETENTION_MS = 48 * 3600 * 1000;

/**
 * The keys an account's state remembers: those of its sends of the last 20 s (by the sends' own
 * time), which is what two requests racing with one key need, decided one after the other on the
 * stream. A key used earlier is answered by the read model of send keys (`send_idempotency`, folded
 * from the same OtpRequested events), which the API asks before it sends the command: that is
 * normally under a second behind the log, and the API waits for it when it is over half this window
 * behind. 5,000 keyed sends a second keep ~100,000 keys here (~28 MB). The state
 * kept all 48 h of keys until 2026-11-27: ~280 bytes a key, so one keyed send a second held ~50 MB
 * per account, and the process ran out of heap within a day or two.
 */
export const IDEMPOTENCY_MEMORY_MS = 20_000;

export const SETTLED_WINDOW = 1024;

function rememberSettled(state: AccountState, otpId: string): void {
  state.settled.add(otpId);
  // Sets iterate in insertion order: the first entry is the oldest.
  if (state.settled.size > SETTLED_WINDOW) state.settled.delete(state.settled.values().next().value as string);
}

export const depositKey = (chainId: number, txHash: string, logIndex: number): string =>
  `${chainId}:${txHash.toLowerCase()}:${logIndex}`;

export function initialAccountState(): AccountState {
  return {
    opened: false,
    accountId: '',
    balance: 0n,
    testCreditsGranted: 0,
    testCreditsLeft: 0,
    testCharges: 0,
    pending: 0n,
    keys: new Map(),
    webhook: undefined,
    template: undefined,
    depositAddresses: new Map(),
    deposits: new Map(),
    open: new Map(),
    settled: new Set(),
    idempotency: new Map(),
    requesting: undefined,
  };
}

export type IdempotencyMatch = { kind: 'fresh' } | { kind: 'replay'; otpId: string } | { kind: 'conflict'; otpId: string };

/** What an earlier use of a key (`rec`, made `withinMs` before `atMs` at most) means for a request hashing to `requestHash`. */
export function matchIdempotencyRecord(rec: IdempotencyRecord | undefined, requestHash: string | undefined, atMs: number, withinMs = IDEMPOTENCY_RETENTION_MS): IdempotencyMatch {
  if (!rec || atMs - rec.atMs > withinMs) return { kind: 'fresh' };
  return rec.requestHash === requestHash ? { kind: 'replay', otpId: rec.otpId } : { kind: 'conflict', otpId: rec.otpId };
}

/**
 * What a SendOtp with an Idempotency-Key means against the state: a replay or a conflict of a send of
 * the last 20 s, or `fresh` (no such send in them; an earlier one is the read model's).
 */
export function idempotencyMatch(state: AccountState, key: string | undefined, requestHash: string | undefined, atMs: number): IdempotencyMatch {
  if (key === undefined) return { kind: 'fresh' };
  return matchIdempotencyRecord(state.idempotency.get(key), requestHash, atMs, IDEMPOTENCY_MEMORY_MS);
}

function requireOpen(state: AccountState): void {
  if (!state.opened) throw new DomainError('account_not_open', 'account does not exist');
}

/**
 * What would pay for one send at `price`: test credits first, then the balance. Refuses with
 * `insufficient_balance` when neither does, or while the balance is negative (I3: a deposit
 * reversal left it so; sends wait for a top-up).
 */
export function fundingOf(state: AccountState, price: Micros, testCredits = true): FundedBy {
  if (state.balance < 0n) throw new DomainError('insufficient_balance', 'balance is negative; top up to send');
  const attemptsLeft = state.testCreditsGranted * TEST_ATTEMPTS_PER_CREDIT - state.testCharges;
  const byCredit = state.testCreditsLeft > 0 && attemptsLeft > 0;
  if (byCredit && testCredits) return 'test_credit';
  if (state.balance >= price) return 'balance';
  throw new DomainError(
    'insufficient_balance',
    byCredit
      ? 'test credits cannot pay for this phone today: free sends to one phone are limited per day; top up to send'
      : state.testCreditsLeft > 0
        ? `test credits pay for at most ${state.testCreditsGranted * TEST_ATTEMPTS_PER_CREDIT} sends (a refund gives the credit back, not the send); top up to send`
        : 'neither test credits nor balance cover the price',
  );
}

function decideSend(cmd: Extract<AccountCommand, { type: 'SendOtp' }>, state: AccountState): AccountEvent[] {
  requireOpen(state);
  const { otp, price } = cmd;
  const idem = idempotencyMatch(state, otp.idempotencyKey, otp.requestHash, Date.parse(otp.at));
  if (idem.kind === 'replay') return [];
  if (idem.kind === 'conflict') {
    throw new DomainError('idempotency_conflict', 'this Idempotency-Key was used with a different request', { otpId: idem.otpId });
  }
  if (state.open.has(otp.otpId) || state.settled.has(otp.otpId)) {
    throw new DomainError('already_exists', `otp ${otp.otpId} is already charged`);
  }
  if (price < 0n) throw new DomainError('invalid_command', 'price must not be negative');
  // Webhooks are signed with the account's secret, which only PUT /api/v1/webhook creates (and shows):
  // a per-send URL without one could never be signed, so it is refused before anything is charged.
  if (otp.webhookUrl !== undefined && state.webhook === undefined) {
    throw new DomainError('invalid_request', 'webhook_url: this account has no webhook secret to sign with yet; PUT /api/v1/webhook once (its secret signs per-send URLs too)');
  }
  const fundedBy = fundingOf(state, price, cmd.testCredits ?? true);
  return [
    // The account's templates ride on the request, so the OTP goes out in the text it was decided with.
    { type: 'OtpRequested', data: state.template === undefined ? otp : { ...otp, template: state.template } },
    { type: 'Charged', data: { otpId: otp.otpId, amount: microsToDigits(price), fundedBy, at: otp.at } },
  ];
}

/** One channel's template after the command: the new one, the default again (undefined), or the current one. */
function nextTemplate(channel: 'sms' | 'voice', given: string | null | undefined, current: MessageTemplate | undefined): string | undefined {
  if (given === undefined) return current?.[channel];
  if (given === null) return undefined;
  const problems = checkTemplate(channel, given);
  if (problems.length > 0) throw new DomainError('invalid_request', `${channel}: ${problems.map((p) => describeTemplateProblem(channel, p)).join('; ')}`);
  return given;
}

function decideTemplate(cmd: Extract<AccountCommand, { type: 'SetMessageTemplate' }>, state: AccountState): AccountEvent[] {
  requireOpen(state);
  const sms = nextTemplate('sms', cmd.sms, state.template);
  const voice = nextTemplate('voice', cmd.voice, state.template);
  if (sms === state.template?.sms && voice === state.template?.voice) return [];
  return [{ type: 'MessageTemplateSet', data: { ...(sms !== undefined ? { sms } : {}), ...(voice !== undefined ? { voice } : {}), at: cmd.at } }];
}

export function decideAccount(cmd: AccountCommand, state: AccountState): AccountEvent[] {
  switch (cmd.type) {
    case 'OpenAccount': {
      const { type: _, firstKey, ...data } = cmd;
      if (state.opened) {
        if (firstKey !== undefined && state.accountId === cmd.accountId && state.keys.get(firstKey.keyId)?.keyHash === firstKey.keyHash) return [];
        throw new DomainError('account_exists', 'account is already open');
      }
      const opened: AccountEvent = { type: 'AccountOpened', data };
      return firstKey === undefined ? [opened] : [opened, { type: 'ApiKeyIssued', data: { ...firstKey, at: cmd.at } }];
    }
    case 'IssueApiKey': {
      requireOpen(state);
      // The same key again is a retry whose answer was lost (its id and key were planned before the first try).
      const issued = state.keys.get(cmd.keyId);
      if (issued?.keyHash === cmd.keyHash) return [];
      if (issued) throw new DomainError('already_exists', 'key id already issued');
      if (state.keys.size >= MAX_KEYS_ISSUED) {
        throw new DomainError('invalid_request', `an account is issued at most ${MAX_KEYS_ISSUED} keys in all, revoked ones included; this one has had them all`);
      }
      // Each key has its own request rate: without a cap, a free account could mint keys to multiply it.
      if ([...state.keys.values()].filter((k) => !k.revoked).length >= MAX_ACTIVE_KEYS) {
        throw new DomainError('invalid_request', `an account has at most ${MAX_ACTIVE_KEYS} active keys: revoke one (DELETE /api/v1/keys/:key_id) first`);
      }
      const { type: _, ...data } = cmd;
      return [{ type: 'ApiKeyIssued', data }];
    }
    case 'RevokeApiKey': {
      requireOpen(state);
      const key = state.keys.get(cmd.keyId);
      if (!key) throw new DomainError('not_found', 'no such key');
      return key.revoked ? [] : [{ type: 'ApiKeyRevoked', data: { keyId: cmd.keyId, at: cmd.at } }];
    }
    case 'ConfigureWebhook': {
      requireOpen(state);
      const { type: _, ...data } = cmd;
      return [{ type: 'WebhookConfigured', data }];
    }
    case 'RemoveWebhook':
      requireOpen(state);
      return state.webhook === undefined ? [] : [{ type: 'WebhookRemoved', data: { at: cmd.at } }];
    case 'SetMessageTemplate':
      return decideTemplate(cmd, state);
    case 'AssignDepositAddress': {
      requireOpen(state);
      if (state.depositAddresses.has(cmd.chain)) return [];
      const { type: _, ...data } = cmd;
      return [{ type: 'DepositAddressAssigned', data }];
    }
    case 'CreditDeposit': {
      requireOpen(state);
      // I4: a transfer is credited at most once, whatever happened to it since.
      if (state.deposits.has(depositKey(cmd.chainId, cmd.txHash, cmd.logIndex))) return [];
      if (microsFromDigits(cmd.amount) < 0n) throw new DomainError('invalid_command', 'deposit amount must not be negative');
      const { type: _, ...data } = cmd;
      return [{ type: 'DepositCredited', data }];
    }
    case 'ReverseDeposit': {
      requireOpen(state);
      const dep = state.deposits.get(depositKey(cmd.chainId, cmd.txHash, cmd.logIndex));
      // I4: reversed at most once, and only what was credited.
      if (!dep || dep.reversed) return [];
      const { type: _, ...data } = cmd;
      return [{ type: 'DepositReversed', data }];
    }
    case 'SendOtp':
      return decideSend(cmd, state);
    case 'MarkDelivered': {
      requireOpen(state);
      // I2: only an open charge settles; a second settlement of either kind is a no-op.
      if (!state.open.has(cmd.otpId)) return [];
      return [{ type: 'Delivered', data: { otpId: cmd.otpId, via: cmd.via, at: cmd.at } }];
    }
    case 'RefundOtp': {
      requireOpen(state);
      const charge = state.open.get(cmd.otpId);
      if (!charge) return [];
      // I2: a refund returns exactly what was charged, to where it came from.
      return [
        {
          type: 'Refunded',
          data: { otpId: cmd.otpId, amount: microsToDigits(charge.amount), fundedBy: charge.fundedBy, reason: cmd.reason, at: cmd.at },
        },
      ];
    }
  }
}

/**
 * The keys of each state's `idempotency` in the order they were recorded, beside the Map (not in the
 * state, so it is no part of what snapshots and equality see): sweeping the Map itself from the front
 * walked every earlier deletion's hole (oldest-first.ts), 7 µs per keyed send at 500 a second on one
 * account and 67 µs at 5,000. Built from the Map's order the first time a state needs it (a state
 * folded here, or decoded from a snapshot).
 */
const idempotencyOrder = new WeakMap<AccountState['idempotency'], ExpiryQueue<string>>();

function recordIdempotency(state: AccountState, key: string, record: IdempotencyRecord): void {
  state.idempotency.delete(key);
  state.idempotency.set(key, record);
  idempotencyOrder.get(state.idempotency)?.push(key, record.atMs);
}

function pruneIdempotency(state: AccountState, nowMs: number): void {
  const keys = state.idempotency;
  let order = idempotencyOrder.get(keys);
  if (order === undefined) {
    order = new ExpiryQueue<string>();
    for (const [key, rec] of keys) order.push(key, rec.atMs);
    idempotencyOrder.set(keys, order);
  }
  // Oldest first (a key used again moves to the end): the sweep stops at the first key still in the
  // window, those older than IDEMPOTENCY_MEMORY_MS go (times are whole milliseconds).
  order.sweep(
    nowMs - IDEMPOTENCY_MEMORY_MS - 1,
    (key, atMs) => keys.get(key)?.atMs === atMs,
    (key) => keys.delete(key),
  );
}

export function evolveAccount(state: AccountState, event: AccountEvent): AccountState {
  switch (event.type) {
    case 'AccountOpened':
      state.opened = true;
      state.accountId = event.data.accountId;
      state.testCreditsGranted += event.data.testCredits;
      state.testCreditsLeft += event.data.testCredits;
      break;
    case 'ApiKeyIssued':
      state.keys.set(event.data.keyId, { keyHash: event.data.keyHash, revoked: false });
      break;
    case 'ApiKeyRevoked': {
      const key = state.keys.get(event.data.keyId);
      if (key) key.revoked = true;
      break;
    }
    case 'WebhookConfigured':
      state.webhook = { url: event.data.url, secret: event.data.secret };
      break;
    case 'WebhookRemoved':
      state.webhook = undefined;
      break;
    case 'MessageTemplateSet': {
      const { at: _, ...template } = event.data;
      state.template = template.sms !== undefined || template.voice !== undefined ? template : undefined;
      break;
    }
    case 'DepositAddressAssigned':
      state.depositAddresses.set(event.data.chain, { address: event.data.address, index: event.data.index });
      break;
    case 'DepositCredited': {
      const amount = microsFromDigits(event.data.amount);
      state.deposits.set(depositKey(event.data.chainId, event.data.txHash, event.data.logIndex), { amount, reversed: false });
      state.balance += amount;
      break;
    }
    case 'DepositReversed': {
      const dep = state.deposits.get(depositKey(event.data.chainId, event.data.txHash, event.data.logIndex));
      if (dep && !dep.reversed) {
        dep.reversed = true;
        state.balance -= dep.amount;
      }
      break;
    }
    case 'OtpRequested': {
      const { idempotencyKey, requestHash, otpId, at } = event.data;
      state.requesting = event.data;
      if (idempotencyKey !== undefined) {
        const atMs = Date.parse(at);
        recordIdempotency(state, idempotencyKey, { requestHash, otpId, atMs });
        pruneIdempotency(state, atMs);
      }
      break;
    }
    case 'Charged': {
      const amount = microsFromDigits(event.data.amount);
      const r = state.requesting?.otpId === event.data.otpId ? state.requesting : undefined;
      state.requesting = undefined;
      state.open.set(event.data.otpId, r ? { amount, fundedBy: event.data.fundedBy, carrier: r.carrier, channel: r.channel, requestedAt: r.at } : { amount, fundedBy: event.data.fundedBy });
      if (event.data.fundedBy === 'test_credit') {
        state.testCreditsLeft -= 1;
        state.testCharges += 1;
      } else {
        state.balance -= amount;
        state.pending += amount;
      }
      break;
    }
    case 'Delivered': {
      const charge = state.open.get(event.data.otpId);
      if (charge) {
        state.open.delete(event.data.otpId);
        rememberSettled(state, event.data.otpId);
        if (charge.fundedBy === 'balance') state.pending -= charge.amount;
      }
      break;
    }
    case 'Refunded': {
      const charge = state.open.get(event.data.otpId);
      if (charge) {
        state.open.delete(event.data.otpId);
        rememberSettled(state, event.data.otpId);
        if (charge.fundedBy === 'test_credit') state.testCreditsLeft += 1;
        else {
          state.balance += charge.amount;
          state.pending -= charge.amount;
        }
      }
      break;
    }
  }
  return state;
}

export const accountDecider: Decider<AccountCommand, AccountEvent, AccountState> = {
  decide: decideAccount,
  evolve: evolveAccount,
  initialState: initialAccountState,
  snapshot: accountSnapshot,
};
