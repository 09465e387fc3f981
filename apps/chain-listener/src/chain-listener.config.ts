/**
 * The distributed chain-listener's configuration, from environment
 * variables, validated by zod at start. One process per chain
 * (`NEXO_CHAIN=<slug>`): the cursor and the deposit watch have a single writer.
 */
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { ListenHostSchema } from '#observability';
import type { ChainConfig } from '#chain';
import { chainsFromEnv } from './chains.config.js';

const EnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3002),
  HOST: ListenHostSchema,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  NEXO_CHAIN: z.string({ error: 'is required (the slug of the chain this process listens to)' }).regex(/^[a-z][a-z0-9-]{0,31}$/),
  NEXO_CHAINS: z.string().optional(),
  NEXO_CHAINS_FILE: z.string().optional(),
  ESDB_URL: z.string({ error: 'is required' }).regex(/^esdb(\+discover)?:\/\//, 'must be an esdb:// connection string'),
  KAFKA_BROKERS: z
    .string({ error: 'is required' })
    .transform((v) => v.split(',').map((b) => b.trim()).filter((b) => b !== ''))
    .pipe(z.array(z.string().regex(/^[^\s:/]+:\d{1,5}$/, 'each broker must be host:port')).min(1, 'needs at least one broker')),
  KAFKA_CLIENT_ID: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional(),
  KAFKA_SSL: z.enum(['true', 'false']).default('false'),
  NEXO_DATA_DIR: z.string().min(1).default('./data'),
  /** Cursor, deposit watch and the directory read model. Must outlive the container (a volume): see deposit-watch.store.ts. */
  NEXO_CHAIN_DB_FILE: z.string().min(1).optional(),
});

export interface ChainListenerConfig {
  port: number;
  host: string;
  logLevel: string;
  chain: ChainConfig;
  esdbUrl: string;
  kafka: { brokers: string[]; clientId: string; ssl: boolean };
  dbFile: string;
}

export class ChainListenerConfigError extends Error {}

export function loadChainListenerConfig(env: NodeJS.ProcessEnv = process.env): ChainListenerConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ChainListenerConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  let chains: ChainConfig[];
  try {
    chains = chainsFromEnv(e);
  } catch (error) {
    throw new ChainListenerConfigError(`invalid configuration:\n  ${(error as Error).message}`);
  }
  const chain = chains.find((c) => c.slug === e.NEXO_CHAIN);
  if (!chain) {
    throw new ChainListenerConfigError(`invalid configuration:\n  NEXO_CHAIN: "${e.NEXO_CHAIN}" is not among the configured chains (${chains.map((c) => c.slug).join(', ') || 'none'})`);
  }
  return {
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    chain,
    esdbUrl: e.ESDB_URL,
    kafka: { brokers: e.KAFKA_BROKERS, clientId: e.KAFKA_CLIENT_ID ?? `nexo-chain-${chain.slug}`, ssl: e.KAFKA_SSL === 'true' },
    dbFile: resolve(e.NEXO_CHAIN_DB_FILE ?? join(e.NEXO_DATA_DIR, `chain-${chain.slug}.db`)),
  };
}
