/**
 * Money in, started inside a process: a listener and a deposit consumer per
 * configured chain. The embedded default runs them in the API process over
 * the in-process bus; the distributed chain-listener runs them for its one
 * chain over Kafka.
 */
import type Database from 'better-sqlite3';
import { type MessageBus, TOPICS } from '#bus';
import { type ChainConfig, type EthersChainClient, ethersChainClientFor } from '#chain';
import type { CommandRunner } from '#eventstore';
import type { Logger, NexoMetrics } from '#observability';
import { ChainListener } from './chain-listener.js';
import { type DepositConsumer, depositGroupOf, startDepositConsumer } from './deposit.consumer.js';

export interface ChainServicesDeps {
  chains: readonly ChainConfig[];
  bus: MessageBus;
  runner: CommandRunner;
  db: Database.Database;
  logger: Logger;
  clock?: () => Date;
  metrics?: NexoMetrics;
  caughtUp?: () => Promise<void>;
  /** Run the listeners (default) or only the consumers. */
  listen?: boolean;
  /** Run the deposit consumers (default). */
  consume?: boolean;
}

export interface ChainServices {
  listeners: ChainListener[];
  consumers: DepositConsumer[];
  ready(): boolean;
  stop(): Promise<void>;
}

export async function startChainServices(deps: ChainServicesDeps): Promise<ChainServices> {
  const { chains } = deps;
  deps.metrics?.labels.chain.allow(...chains.map((c) => c.slug));
  const clients: EthersChainClient[] = [];
  const listeners: ChainListener[] = [];
  const consumers: DepositConsumer[] = [];
  const stop = async () => {
    for (const l of listeners) await l.stop();
    for (const c of consumers) await c.stop();
    for (const c of clients) c.close();
  };
  try {
    if (deps.listen !== false) {
      for (const chain of chains) {
        const client = ethersChainClientFor(chain, { requestTimeoutMs: 10_000 });
        clients.push(client);
        const listener = new ChainListener({ chain, client, bus: deps.bus, db: deps.db, logger: deps.logger, metrics: deps.metrics, clock: deps.clock });
        // Refuse to start on a token whose decimals differ from the config: every credit would be off by powers of ten.
        await listener.verifyAtStart();
        listeners.push(listener);
      }
    }
    if (deps.consume !== false) {
      for (const chain of chains) {
        consumers.push(
          await startDepositConsumer({ chain, bus: deps.bus, runner: deps.runner, db: deps.db, logger: deps.logger, clock: deps.clock, metrics: deps.metrics, caughtUp: deps.caughtUp }),
        );
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  // The deposit groups' lag and held messages, as the workers report theirs (NexoBusConsumerLagHigh, NexoBusMessagesHeld).
  const metrics = deps.metrics;
  if (metrics && consumers.length > 0) {
    metrics.labels.group.allow(...chains.map(depositGroupOf));
    metrics.beforeScrape(async () => {
      for (const [i, c] of consumers.entries()) {
        const labels = { topic: TOPICS.chainTransfers, group: depositGroupOf(chains[i]) };
        metrics.busConsumerLag.set(labels, await c.lag());
        metrics.busHeld.set(labels, (await c.held?.()) ?? 0);
      }
    });
  }
  for (const l of listeners) l.start();
  for (const l of listeners) deps.logger.info({ chain: l.chain.slug, chainId: l.chain.chainId, pollIntervalMs: l.chain.pollIntervalMs }, 'deposit listener started');
  return { listeners, consumers, ready: () => listeners.every((l) => l.ready()), stop };
}
