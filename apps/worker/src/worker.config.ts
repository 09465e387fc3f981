/**
 * The distributed worker's configuration, from environment variables,
 * validated by zod at start. Unlike the embedded default nothing is generated:
 * every instance must share the API's cipher keys and phone pepper, so a
 * missing one stops the process with an error naming it.
 */
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { ListenHostSchema } from '#observability';
import { CarriersConfigEnvSchema, type CarriersConfigInput } from '#carriers';
import type { PrivateAddressPolicy } from '#security';

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(def);

const EnvSchema = z.object({
  PORT: int(3001, 0, 65535),
  HOST: ListenHostSchema,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ESDB_URL: z.string({ error: 'is required' }).regex(/^esdb(\+discover)?:\/\//, 'must be an esdb:// connection string'),
  /** `host:port[,host:port…]` */
  KAFKA_BROKERS: z
    .string({ error: 'is required' })
    .transform((v) => v.split(',').map((b) => b.trim()).filter((b) => b !== ''))
    .pipe(z.array(z.string().regex(/^[^\s:/]+:\d{1,5}$/, 'each broker must be host:port')).min(1, 'needs at least one broker')),
  KAFKA_CLIENT_ID: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).default('nexo-worker'),
  KAFKA_SSL: z.enum(['true', 'false']).default('false'),
  NEXO_CIPHER_KEYS: z
    .string({ error: 'is required' })
    .regex(/^[A-Za-z0-9_-]{1,32}:[0-9a-fA-F]{64}(,[A-Za-z0-9_-]{1,32}:[0-9a-fA-F]{64})*$/, 'must be id:64-hex-chars[,id:hex…]'),
  NEXO_PHONE_PEPPER: z.string({ error: 'is required' }).regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters'),
  NEXO_DATA_DIR: z.string().min(1).default('./data'),
  /** This instance's SQLite file: read models fed from EventStoreDB, the relay checkpoint, webhook deliveries, parked dispatches. */
  NEXO_WORKER_DB_FILE: z.string().min(1).optional(),
  /** Exactly one instance per event log runs the relay. */
  NEXO_RELAY: z.enum(['true', 'false']).default('false'),
  NEXO_EXPIRY_SECONDS: int(600, 1),
  /** The upstream's per-phone rule (I8), as the API's `NEXO_PHONE_INTERVAL_SECONDS`. */
  NEXO_PHONE_INTERVAL_SECONDS: int(30, 0, 3600),
  NEXO_CARRIERS: CarriersConfigEnvSchema,
  /** `deny`: webhook URLs must be public addresses (signup is open to anyone); `allow`: development and tests on one machine. */
  NEXO_WEBHOOK_PRIVATE_ADDRESSES: z.enum(['deny', 'allow']).default('deny'),
});

export interface WorkerConfig {
  port: number;
  host: string;
  logLevel: string;
  esdbUrl: string;
  kafka: { brokers: string[]; clientId: string; ssl: boolean };
  cipherKeys: Record<string, Buffer>;
  cipherKeyId: string;
  phonePepper: Buffer;
  dbFile: string;
  relay: boolean;
  expiryMs: number;
  phoneIntervalMs: number;
  carriers: CarriersConfigInput;
  /** Whether webhook URLs may point at private, loopback or link-local addresses. */
  webhookPrivateAddresses: PrivateAddressPolicy;
}

export class WorkerConfigError extends Error {}

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new WorkerConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const keys = e.NEXO_CIPHER_KEYS.split(',').map((pair) => pair.split(':') as [string, string]);
  return {
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    esdbUrl: e.ESDB_URL,
    kafka: { brokers: e.KAFKA_BROKERS, clientId: e.KAFKA_CLIENT_ID, ssl: e.KAFKA_SSL === 'true' },
    cipherKeys: Object.fromEntries(keys.map(([id, hex]) => [id, Buffer.from(hex, 'hex')])),
    cipherKeyId: keys[0][0],
    phonePepper: Buffer.from(e.NEXO_PHONE_PEPPER, 'hex'),
    dbFile: resolve(e.NEXO_WORKER_DB_FILE ?? join(e.NEXO_DATA_DIR, 'worker.db')),
    relay: e.NEXO_RELAY === 'true',
    expiryMs: e.NEXO_EXPIRY_SECONDS * 1000,
    // 0 (tests) is a 1 ms window, as in the API: the same value must start both.
    phoneIntervalMs: Math.max(1, e.NEXO_PHONE_INTERVAL_SECONDS * 1000),
    carriers: e.NEXO_CARRIERS as CarriersConfigInput,
    webhookPrivateAddresses: e.NEXO_WEBHOOK_PRIVATE_ADDRESSES,
  };
}
