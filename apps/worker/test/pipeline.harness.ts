/**
 * The delivery pipeline as the embedded default wires it (SQLite log, the
 * read models in the same file, the in-process bus, every worker), without
 * the HTTP layer, so a test can wrap the bus, shorten the phone window or
 * read the raw log. OTPs enter through the account decider exactly as the
 * send handler appends them.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { InProcessMessageBus, type MessageBus } from '#bus';
import { createCarriers, type Carriers, type ReceiptSink } from '#carriers';
import { accountDecider, accountStream, maskPhone, parseVnMobile, pickChannel, type Carrier, type Channel, type RequestedChannel } from '#domain';
import { CommandRunner, SqliteEventStore, type RecordedEvent } from '#eventstore';
import { createLogger, linesInto } from '#observability';
import { defaultProjections, getBalance, openLocalDb, Projector } from '#projections';
import { AesGcmCipher, newId, newWebhookSecret, phoneHash, type Cipher } from '#security';
import { lookupsOn, receiptPublisher, startWorkers, type RunningWorkers, type WorkerOptions } from '#worker';
import { testDeposit } from '../../../libs/eventstore/src/testing/seed-accounts.js';

export const PRICE = 22_000n;
const AT = () => new Date().toISOString();

export interface PipelineOptions {
  /** NEXO_CARRIERS' shape; the in-process simulator when absent. */
  carriers?: unknown;
  /** Wraps the bus every worker and the relay use. */
  wrapBus?: (bus: MessageBus) => MessageBus;
  expiryMs?: number;
  workers?: WorkerOptions;
  logLevel?: string;
  /** Start on this directory's file (a restart); it is then left in place at stop. */
  dir?: string;
  /** The AES key and phone pepper, so a restart can open what the first run sealed. */
  secrets?: { cipherKey: Buffer; pepper: Buffer };
}

export interface Pipeline {
  store: SqliteEventStore;
  runner: CommandRunner;
  db: Database.Database;
  bus: MessageBus;
  carriers: Carriers;
  workers: RunningWorkers;
  /** Receipts from outside the gateways (an HTTP aggregator's callback) enter here. */
  publishReceipt: ReceiptSink;
  logs: string[];
  dir: string;
  secrets: { cipherKey: Buffer; pepper: Buffer };
  openAccount(options?: { deposit?: bigint; testCredits?: number }): Promise<string>;
  configureWebhook(accountId: string, url: string): Promise<string>;
  send(accountId: string, phone: string, options?: Omit<SendOptions, 'channels'>): Promise<{ otpId: string; carrier: Carrier; channel: Channel }>;
  /** Every OTP in the raw log with what settled it. */
  ledger(): Promise<Map<string, OtpFacts>>;
  balance(accountId: string): ReturnType<typeof getBalance>;
  stop(): Promise<void>;
}

export interface OtpFacts {
  accountId: string;
  charged: { amount: bigint; fundedBy: string }[];
  settlements: RecordedEvent[];
  otpEvents: RecordedEvent[];
}

export async function startPipeline(options: PipelineOptions = {}): Promise<Pipeline> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'nexo-worker-'));
  const file = join(dir, 'nexo.db');
  const logs: string[] = [];
  const logger = createLogger({
    level: options.logLevel ?? 'warn',
    destination: linesInto(logs),
  });
  const store = SqliteEventStore.open(file);
  const db = openLocalDb(file);
  const runner = new CommandRunner(store);
  const secrets = options.secrets ?? { cipherKey: randomBytes(32), pepper: randomBytes(32) };
  const cipher = new AesGcmCipher({ k1: secrets.cipherKey }, 'k1');
  const pepper = secrets.pepper;
  const expiryMs = options.expiryMs ?? 600_000;
  const projector = new Projector({ store, db, projections: defaultProjections({ expiryMs }), onError: (e) => logger.error({ err: e }, 'projection failed') });
  await projector.catchUp();
  projector.start();
  const inner = new InProcessMessageBus(db, { pollIntervalMs: 50, retryDelayMs: 100, onError: (e, group, topic) => logger.error({ err: e, group, topic }, 'consumer failed') });
  const bus = options.wrapBus ? options.wrapBus(inner) : inner;
  const publishReceipt = receiptPublisher({ bus });
  const carriers = createCarriers(options.carriers ?? {}, { sink: publishReceipt, logger });
  const channels = carriers.routing.channelsByCarrier();
  const workers = await startWorkers(
    { store, runner, bus, db, cipher, carriers, logger, clock: () => new Date(), expiryMs },
    lookupsOn(db),
    { expiryIntervalMs: 200, settleOnReceipt: true, ...options.workers, webhooks: { pollMs: 20, baseDelayMs: 100, privateAddresses: 'allow', ...options.workers?.webhooks } },
  );

  return {
    store,
    runner,
    db,
    bus,
    carriers,
    workers,
    publishReceipt,
    logs,
    dir,
    secrets,
    async openAccount({ deposit = 0n, testCredits = 5 } = {}) {
      const accountId = newId('acc');
      const stream = accountStream(accountId);
      await runner.handle(stream, accountDecider, { type: 'OpenAccount', accountId, name: 'worker test', testCredits, at: AT() });
      if (deposit > 0n) {
        await runner.handle(stream, accountDecider, testDeposit(deposit, AT()));
      }
      return accountId;
    },
    async configureWebhook(accountId, url) {
      const secret = newWebhookSecret();
      await runner.handle(accountStream(accountId), accountDecider, { type: 'ConfigureWebhook', url, secret: cipher.seal(secret), at: AT() });
      return secret;
    },
    send: (accountId, phone, options) => appendSend(runner, { cipher, pepper }, accountId, phone, { ...options, channels }),
    ledger: () => readLedger(store),
    balance: (accountId) => getBalance(db, accountId),
    async stop() {
      await workers.stop();
      await carriers.close();
      await projector.stop();
      await inner.close();
      await store.close();
      if (db.open) db.close();
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Charges, settlements and carrier facts per OTP, straight from the log. */
export interface SendOptions {
  channel?: RequestedChannel;
  webhookUrl?: string;
  code?: string;
  otpId?: string;
  /** Channels each carrier has (the routing table's); the product's defaults when absent. */
  channels?: Readonly<Record<Carrier, readonly Channel[]>>;
}

/** Appends an accepted OTP to the account's stream exactly as the API's send handler does. */
export async function appendSend(
  runner: CommandRunner,
  { cipher, pepper }: { cipher: Cipher; pepper: Buffer },
  accountId: string,
  phone: string,
  { channel: requested = 'auto', webhookUrl, code = '482913', otpId = newId('otp'), channels }: SendOptions = {},
): Promise<{ otpId: string; carrier: Carrier; channel: Channel }> {
  const mobile = parseVnMobile(phone);
  if (!mobile) throw new Error('test phone is not a Vietnamese mobile number');
  const channel = pickChannel(mobile.carrier, requested, channels);
  if (!channel) throw new Error(`no route for ${mobile.carrier}`);
  await runner.handle(accountStream(accountId), accountDecider, {
    type: 'SendOtp',
    price: PRICE,
    otp: {
      otpId,
      phone: cipher.seal(mobile.e164),
      phoneHash: phoneHash(pepper, mobile.e164),
      phoneMasked: maskPhone(mobile.e164),
      carrier: mobile.carrier,
      channel,
      ...(requested === 'auto' ? { auto: true } : {}),
      code: cipher.seal(code),
      ...(webhookUrl ? { webhookUrl } : {}),
      at: AT(),
    },
  });
  return { otpId, carrier: mobile.carrier, channel };
}

export async function readLedger(store: Pick<SqliteEventStore, 'readAll'>): Promise<Map<string, OtpFacts>> {
  const otps = new Map<string, OtpFacts>();
  const of = (otpId: string, accountId = '') => {
    let f = otps.get(otpId);
    if (!f) otps.set(otpId, (f = { accountId, charged: [], settlements: [], otpEvents: [] }));
    if (accountId) f.accountId = accountId;
    return f;
  };
  for await (const e of store.readAll()) {
    const d = e.data as { otpId?: string; amount?: string; fundedBy?: string };
    if (e.streamId.startsWith('account-')) {
      const accountId = e.streamId.slice('account-'.length);
      if (e.type === 'OtpRequested') of(d.otpId!, accountId);
      else if (e.type === 'Charged') of(d.otpId!, accountId).charged.push({ amount: BigInt(d.amount!), fundedBy: d.fundedBy! });
      else if (e.type === 'Delivered' || e.type === 'Refunded') of(d.otpId!, accountId).settlements.push(e);
    } else if (e.streamId.startsWith('otp-')) {
      of(e.streamId.slice('otp-'.length)).otpEvents.push(e);
    }
  }
  return otps;
}

export interface Hook {
  body: string;
  signature: string;
  receivedAt: number;
}

/**
 * A customer's webhook endpoint on loopback: records every POST and answers 204; `hold(n)` leaves
 * the n-th request (0-based) unanswered (a POST the sender has in flight for as long as the test likes).
 */
export async function webhookSink(options: { hold?: (n: number) => boolean } = {}): Promise<{ url: string; hooks: Hook[]; close(): Promise<void> }> {
  const hooks: Hook[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const n = hooks.length;
      hooks.push({ body, signature: String(req.headers['nexo-signature'] ?? ''), receivedAt: Date.now() });
      if (!options.hold?.(n)) res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    hooks,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let phoneSeq = 0;
/** Distinct valid numbers across carriers, so the per-phone window never interferes by accident. */
export function nextPhone(prefixes = ['091', '098', '090', '094', '086', '093', '097', '088']): string {
  const n = phoneSeq++;
  const salt = process.pid % 1000;
  return `${prefixes[n % prefixes.length]}${String((salt * 9973 + Math.floor(n / prefixes.length) * 7919) % 10_000_000).padStart(7, '0')}`;
}
