/**
 * A randomized run of commands through the one command path (CommandRunner
 * with the account and OTP deciders), many in flight at once, the way the
 * API and workers drive it. Seeded, so a failure can be replayed.
 */
import {
  type AccountCommand,
  accountDecider,
  accountStream,
  DomainError,
  type OtpCommand,
  otpDecider,
  otpStream,
} from '#domain';
import { CommandRunner, type EventStore } from '#eventstore';

export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const CARRIERS = ['viettel', 'vinaphone', 'mobifone', 'vietnamobile'] as const;
const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');

export interface RunStats {
  commands: number;
  refused: number;
}

export async function randomRun(store: EventStore, options: { seed: number; commands: number; accounts: number; startMs: number }): Promise<RunStats> {
  const random = prng(options.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const runner = new CommandRunner(store);
  let clock = options.startMs;
  const now = () => new Date((clock += Math.floor(random() * 20_000))).toISOString();
  const accounts = Array.from({ length: options.accounts }, (_, i) => `acc${i}`);
  const open: { accountId: string; otpId: string; attempt: number }[] = [];
  const deposits: { accountId: string; tx: number }[] = [];
  let otpSeq = 0;
  let txSeq = 0;
  let refused = 0;
  let done = 0;

  const account = (id: string, cmd: AccountCommand) => runner.handle(accountStream(id), accountDecider, cmd);
  const otp = (id: string, cmd: OtpCommand) => runner.handle(otpStream(id), otpDecider, cmd);

  for (const id of accounts) {
    await account(id, { type: 'OpenAccount', accountId: id, name: `Exchange ${id}`, testCredits: Math.floor(random() * 4), at: now() });
  }

  function next(): Promise<unknown> {
    const r = random();
    const at = now();
    if (r < 0.45 || open.length === 0) {
      const accountId = pick(accounts);
      const otpId = `otp${otpSeq++}`;
      const carrier = pick(CARRIERS);
      return account(accountId, {
        type: 'SendOtp',
        price: 22_000n,
        otp: {
          otpId,
          phone: 'k1:c2VhbGVk',
          phoneHash: hex(otpSeq, 64),
          phoneMasked: '+8491****678',
          carrier,
          channel: carrier === 'mobifone' || random() < 0.5 ? 'sms' : 'voice',
          code: 'k1:c2VhbGVk',
          at,
        },
      }).then((res) => {
        if (res.events.length > 0) open.push({ accountId, otpId, attempt: 0 });
      });
    }
    if (r < 0.6) {
      const o = pick(open);
      o.attempt += 1;
      return otp(o.otpId, {
        type: 'RecordRouted',
        attempt: o.attempt,
        provider: 'sim',
        carrier: 'viettel',
        channel: 'sms',
        providerMessageId: `m${o.otpId}-${o.attempt}`,
        at,
      });
    }
    if (r < 0.85) {
      // Settlement; the same OTP may be settled twice (a redelivered message), which must change nothing.
      const o = pick(open);
      if (random() < 0.7) open.splice(open.indexOf(o), 1);
      return random() < 0.8
        ? account(o.accountId, { type: 'MarkDelivered', otpId: o.otpId, via: 'receipt', at })
        : account(o.accountId, { type: 'RefundOtp', otpId: o.otpId, reason: pick(['undelivered', 'expired', 'rejected'] as const), at });
    }
    if (r < 0.95 || deposits.length === 0) {
      const accountId = pick(accounts);
      const tx = txSeq++;
      deposits.push({ accountId, tx });
      return account(accountId, {
        type: 'CreditDeposit',
        chainId: 56,
        token: `0x${'d'.repeat(40)}`,
        txHash: `0x${hex(tx, 64)}`,
        logIndex: 0,
        blockNumber: tx,
        blockHash: `0x${'b'.repeat(64)}`,
        amount: String(22_000 * (1 + Math.floor(random() * 20))),
        at,
      });
    }
    const d = pick(deposits);
    return account(d.accountId, { type: 'ReverseDeposit', chainId: 56, txHash: `0x${hex(d.tx, 64)}`, logIndex: 0, reason: 'reorg', at });
  }

  while (done < options.commands) {
    const wave = Math.min(50, options.commands - done);
    const results = await Promise.allSettled(Array.from({ length: wave }, next));
    for (const res of results) {
      if (res.status === 'rejected') {
        if (!(res.reason instanceof DomainError)) throw res.reason;
        refused++;
      }
    }
    done += wave;
  }
  return { commands: done, refused };
}
