/**
 * The account state written down, so that loading a busy account does not mean folding its whole
 * stream: the command path stores one now and then (with the revision it was taken at) and folds
 * only the events after it. Pure: `encode` gives plain JSON, `decode` validates it (it comes back
 * from storage) and gives the state that folding the same events gives, Map and Set order included
 * (the oldest settled id and the oldest Idempotency-Key are the ones dropped first).
 *
 * A change to AccountState or to `evolveAccount` that this format cannot carry bumps VERSION: the
 * command path then ignores older snapshots and folds the stream once more.
 */
import { z } from 'zod';
import type { StateCodec } from './decider.js';
import type { AccountState, OpenCharge } from './account.decider.js';
import { FUNDING_SOURCES, MessageTemplateSchema, OtpRequested } from './account.events.js';
import { CarrierSchema, ChannelSchema, MicrosDigits } from './schema.js';

const VERSION = 1;

const Opt = <T extends z.ZodType>(t: T) => t.nullable();

const AccountSnapshot = z
  .object({
    opened: z.boolean(),
    accountId: z.string(),
    balance: MicrosDigits,
    testCreditsGranted: z.number().int(),
    testCreditsLeft: z.number().int(),
    testCharges: z.number().int(),
    pending: MicrosDigits,
    /** [keyId, keyHash, revoked] */
    keys: z.array(z.tuple([z.string(), z.string(), z.boolean()])),
    webhook: Opt(z.object({ url: z.string(), secret: z.string() }).strict()),
    template: Opt(MessageTemplateSchema),
    /** [chain, address, index] */
    depositAddresses: z.array(z.tuple([z.string(), z.string(), z.number().int()])),
    /** [depositKey, amount, reversed] */
    deposits: z.array(z.tuple([z.string(), MicrosDigits, z.boolean()])),
    /** [otpId, amount, fundedBy, carrier, channel, requestedAt] */
    open: z.array(
      z.tuple([z.string(), MicrosDigits, z.enum(FUNDING_SOURCES), Opt(CarrierSchema), Opt(ChannelSchema), Opt(z.string())]),
    ),
    settled: z.array(z.string()),
    /** [key, requestHash, otpId, atMs] */
    idempotency: z.array(z.tuple([z.string(), Opt(z.string()), z.string(), z.number()])),
    requesting: Opt(OtpRequested.shape.data),
  })
  .strict();

type Encoded = z.infer<typeof AccountSnapshot>;

const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

function encode(s: AccountState): Encoded {
  return {
    opened: s.opened,
    accountId: s.accountId,
    balance: s.balance.toString(),
    testCreditsGranted: s.testCreditsGranted,
    testCreditsLeft: s.testCreditsLeft,
    testCharges: s.testCharges,
    pending: s.pending.toString(),
    keys: Array.from(s.keys, ([id, k]) => [id, k.keyHash, k.revoked]),
    webhook: orNull(s.webhook),
    template: orNull(s.template),
    depositAddresses: Array.from(s.depositAddresses, ([chain, a]) => [chain, a.address, a.index]),
    deposits: Array.from(s.deposits, ([key, d]) => [key, d.amount.toString(), d.reversed]),
    open: Array.from(s.open, ([otpId, c]) => [otpId, c.amount.toString(), c.fundedBy, orNull(c.carrier), orNull(c.channel), orNull(c.requestedAt)]),
    settled: [...s.settled],
    idempotency: Array.from(s.idempotency, ([key, r]) => [key, orNull(r.requestHash), r.otpId, r.atMs]),
    requesting: orNull(s.requesting),
  };
}

function decode(json: unknown): AccountState {
  const e = AccountSnapshot.parse(json);
  return {
    opened: e.opened,
    accountId: e.accountId,
    balance: BigInt(e.balance),
    testCreditsGranted: e.testCreditsGranted,
    testCreditsLeft: e.testCreditsLeft,
    testCharges: e.testCharges,
    pending: BigInt(e.pending),
    keys: new Map(e.keys.map(([id, keyHash, revoked]) => [id, { keyHash, revoked }])),
    webhook: e.webhook ?? undefined,
    template: e.template ?? undefined,
    depositAddresses: new Map(e.depositAddresses.map(([chain, address, index]) => [chain, { address, index }])),
    deposits: new Map(e.deposits.map(([key, amount, reversed]) => [key, { amount: BigInt(amount), reversed }])),
    open: new Map(
      e.open.map(([otpId, amount, fundedBy, carrier, channel, requestedAt]): [string, OpenCharge] => [
        otpId,
        // The same shape evolve builds: a charge without its request (none in the same append) has no details.
        carrier === null || channel === null || requestedAt === null
          ? { amount: BigInt(amount), fundedBy }
          : { amount: BigInt(amount), fundedBy, carrier, channel, requestedAt },
      ]),
    ),
    settled: new Set(e.settled),
    idempotency: new Map(e.idempotency.map(([key, requestHash, otpId, atMs]) => [key, { requestHash: requestHash ?? undefined, otpId, atMs }])),
    requesting: e.requesting ?? undefined,
  };
}

export const accountSnapshot: StateCodec<AccountState> = { version: VERSION, encode, decode };
