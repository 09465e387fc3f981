/**
 * Configuration from environment variables, validated by zod at start. A bad
 * variable stops the process with an error naming it. Secrets that a fresh
 * embedded install has no way to be given (cipher keys, the phone pepper) are
 * generated once into the data directory, so `npm start` works on a new
 * machine; production sets them explicitly.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HDNodeWallet, Mnemonic } from 'ethers';
import { z } from 'zod';
import { ListenHostSchema } from '#observability';
import { parseUsd } from '#domain';
import { CarriersConfigEnvSchema, type CarriersConfigInput } from '#carriers';
import { type ChainConfig, deriveDepositAddress } from '#chain';
import type { PrivateAddressPolicy } from '#security';
import { chainsFromEnv } from '../../chain-listener/src/chains.config.js';

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(def);

const EnvSchema = z.object({
  PORT: int(3000, 0, 65535),
  HOST: ListenHostSchema,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  NEXO_DATA_DIR: z.string().min(1).default('./data'),
  NEXO_DB_FILE: z.string().min(1).optional(),
  NEXO_READ_MODELS_FILE: z.string().min(1).optional(),
  NEXO_STATE_FILE: z.string().min(1).optional(),
  NEXO_WEBHOOKS_FILE: z.string().min(1).optional(),
  ESDB_URL: z.string().regex(/^esdb(\+discover)?:\/\//, 'must be an esdb:// connection string').optional(),
  NEXO_PRICE_USD: z
    .string()
    .default('0.022')
    .refine((v) => {
      try {
        return parseUsd(v) >= 0n;
      } catch {
        return false;
      }
    }, 'must be a non-negative USD amount with at most 6 decimals'),
  NEXO_TEST_CREDITS: int(5, 0, 1000),
  NEXO_FREE_SENDS_PER_PHONE_PER_DAY: int(3, 0, 1000),
  /** `id:hex64[,id:hex64…]`; the first key seals, all open. */
  NEXO_CIPHER_KEYS: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,32}:[0-9a-fA-F]{64}(,[A-Za-z0-9_-]{1,32}:[0-9a-fA-F]{64})*$/, 'must be id:64-hex-chars[,id:hex…]')
    .optional(),
  NEXO_PHONE_PEPPER: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters').optional(),
  NEXO_PHONE_INTERVAL_SECONDS: int(30, 0, 3600),
  NEXO_KEY_RATE_PER_SECOND: int(1000, 1),
  NEXO_KEY_BURST: int(2000, 1),
  NEXO_SIGNUPS_PER_HOUR: int(20, 1),
  NEXO_EXPIRY_SECONDS: int(600, 1),
  // How many proxies in front set X-Forwarded-For: the client is the address the outermost one saw.
  // `true` means one; trusting every hop would let a client name its own address (and its signup bucket).
  NEXO_TRUST_PROXY: z
    .union([z.enum(['true', 'false']), z.string().regex(/^[0-9]$/, 'a number of proxies (0-9), true (one) or false')])
    .default('false')
    .transform((v) => (v === 'true' ? 1 : v === 'false' ? 0 : Number(v))),
  /** `deny`: webhook URLs must be public addresses (signup is open to anyone); `allow`: development and tests on one machine. */
  NEXO_WEBHOOK_PRIVATE_ADDRESSES: z.enum(['deny', 'allow']).default('deny'),
  /** Upstreams and routes as JSON (see README); unset: the built-in carrier simulator. */
  NEXO_CARRIERS: CarriersConfigEnvSchema,
  /** Comma-separated Kafka brokers: the distributed bus (receipts the API takes are published there). */
  KAFKA_BROKERS: z
    .string()
    .regex(/^[^\s,]+(,[^\s,]+)*$/, 'must be host:port[,host:port…]')
    .optional(),
  /** `embedded`: the delivery workers run in this process (the default); `off`: API only. */
  NEXO_WORKERS: z.enum(['embedded', 'off']).default('embedded'),
  /** Account-level extended public key (m/44'/60'/0'/0) deposit addresses derive from; never an xprv. */
  // Compose passes an unset variable as '': the same as unset.
  NEXO_DEPOSIT_XPUB: z.preprocess((v) => (v === '' ? undefined : v), z.string().trim().min(1).optional()),
  /** Chains taking deposits, as JSON or a JSON file (libs/chain's parseChainsConfig); unset: none (no deposit address is answered, no listener runs). */
  NEXO_CHAINS: z.string().optional(),
  NEXO_CHAINS_FILE: z.string().optional(),
});

export interface AppConfig {
  port: number;
  host: string;
  logLevel: string;
  dataDir: string;
  dbFile: string;
  /** Read models (rebuildable), written only by the projector; with EventStoreDB also the bus and worker state. */
  readModelsFile: string;
  /** Embedded: the in-process bus, worker tables and idempotency records, written only by the API's thread. */
  stateFile: string;
  /** Embedded: the webhook thread's relay checkpoint, bus and delivery rows, written only by that thread. */
  webhooksFile: string;
  esdbUrl: string | undefined;
  priceMicros: bigint;
  testCredits: number;
  /** Sends to one phone that test credits may pay for per UTC day, all accounts together. */
  freeSendsPerPhonePerDay: number;
  cipherKeys: Record<string, Buffer>;
  cipherKeyId: string;
  phonePepper: Buffer;
  phoneIntervalMs: number;
  keyRatePerSecond: number;
  keyBurst: number;
  signupsPerHour: number;
  expiryMs: number;
  /** Proxies in front (0: none): Fastify takes the client address that many hops from the socket. */
  trustProxy: number;
  /** Whether webhook URLs may point at private, loopback or link-local addresses (`NEXO_WEBHOOK_PRIVATE_ADDRESSES`). */
  webhookPrivateAddresses: PrivateAddressPolicy;
  carriers: CarriersConfigInput;
  workers: 'embedded' | 'off';
  kafkaBrokers: string[] | undefined;
  chains: ChainConfig[];
  depositXpub: string | undefined;
  /** The xpub was generated into the data dir: nobody holds its private key, so funds sent to its addresses are lost. */
  depositXpubGenerated: boolean;
}

export class ConfigError extends Error {}

interface GeneratedSecrets {
  cipherKeys?: string;
  phonePepper?: string;
  /** Only the xpub of a random mnemonic that is thrown away: development deposit addresses nobody can spend from. */
  depositXpub?: string;
}

function embeddedSecrets(dataDir: string, needs: { keys: boolean; xpub: boolean }): GeneratedSecrets {
  const file = join(dataDir, 'secrets.json');
  const stored = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as GeneratedSecrets) : {};
  const secrets: GeneratedSecrets = { ...stored };
  if (needs.keys) {
    secrets.cipherKeys ??= `k1:${randomBytes(32).toString('hex')}`;
    secrets.phonePepper ??= randomBytes(32).toString('hex');
  }
  if (needs.xpub && !secrets.depositXpub) {
    const phrase = Mnemonic.entropyToPhrase(randomBytes(16));
    secrets.depositXpub = HDNodeWallet.fromPhrase(phrase, undefined, "m/44'/60'/0'/0").neuter().extendedKey;
  }
  if (JSON.stringify(secrets) !== JSON.stringify(stored)) {
    // Written whole and renamed, so a crash never leaves a file missing the keys that sealed stored secrets.
    writeFileSync(`${file}.tmp`, JSON.stringify(secrets), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }
  return secrets;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const dataDir = resolve(e.NEXO_DATA_DIR);
  // Owner only: the files hold account names, webhook URLs and (sealed) secrets; an existing directory keeps its mode.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // A generated xpub per distributed instance would give one account different addresses: only the embedded default generates one.
  const generateXpub = !e.NEXO_DEPOSIT_XPUB && !e.ESDB_URL;
  const needKeys = !e.NEXO_CIPHER_KEYS || !e.NEXO_PHONE_PEPPER;
  const generated = needKeys || generateXpub ? embeddedSecrets(dataDir, { keys: needKeys, xpub: generateXpub }) : undefined;
  const depositXpub = e.NEXO_DEPOSIT_XPUB ?? (generateXpub ? generated!.depositXpub : undefined);
  if (depositXpub !== undefined) {
    try {
      deriveDepositAddress(depositXpub, 0);
    } catch (error) {
      throw new ConfigError(`invalid configuration:\n  NEXO_DEPOSIT_XPUB: ${(error as Error).message}`);
    }
  }
  let chains: ChainConfig[];
  try {
    chains = chainsFromEnv(e);
  } catch (error) {
    throw new ConfigError(`invalid configuration:\n  ${(error as Error).message}`);
  }
  if (chains.length > 0 && depositXpub === undefined) {
    throw new ConfigError('invalid configuration:\n  NEXO_DEPOSIT_XPUB: required where NEXO_CHAINS takes deposits (the account xpub deposit addresses derive from)');
  }
  const keyList = (e.NEXO_CIPHER_KEYS ?? generated!.cipherKeys!).split(',').map((pair) => pair.split(':') as [string, string]);
  return {
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    dataDir,
    dbFile: resolve(e.NEXO_DB_FILE ?? join(dataDir, 'nexo.db')),
    readModelsFile: resolve(e.NEXO_READ_MODELS_FILE ?? join(dataDir, 'read-models.db')),
    stateFile: resolve(e.NEXO_STATE_FILE ?? join(dataDir, 'state.db')),
    webhooksFile: resolve(e.NEXO_WEBHOOKS_FILE ?? join(dataDir, 'webhooks.db')),
    esdbUrl: e.ESDB_URL,
    priceMicros: parseUsd(e.NEXO_PRICE_USD),
    testCredits: e.NEXO_TEST_CREDITS,
    freeSendsPerPhonePerDay: e.NEXO_FREE_SENDS_PER_PHONE_PER_DAY,
    cipherKeys: Object.fromEntries(keyList.map(([id, hex]) => [id, Buffer.from(hex, 'hex')])),
    cipherKeyId: keyList[0][0],
    phonePepper: Buffer.from(e.NEXO_PHONE_PEPPER ?? generated!.phonePepper!, 'hex'),
    phoneIntervalMs: e.NEXO_PHONE_INTERVAL_SECONDS * 1000,
    keyRatePerSecond: e.NEXO_KEY_RATE_PER_SECOND,
    keyBurst: e.NEXO_KEY_BURST,
    signupsPerHour: e.NEXO_SIGNUPS_PER_HOUR,
    expiryMs: e.NEXO_EXPIRY_SECONDS * 1000,
    trustProxy: e.NEXO_TRUST_PROXY,
    webhookPrivateAddresses: e.NEXO_WEBHOOK_PRIVATE_ADDRESSES,
    carriers: e.NEXO_CARRIERS as CarriersConfigInput,
    workers: e.NEXO_WORKERS,
    kafkaBrokers: e.KAFKA_BROKERS?.split(','),
    chains,
    depositXpub,
    depositXpubGenerated: e.NEXO_DEPOSIT_XPUB === undefined && depositXpub !== undefined,
  };
}
