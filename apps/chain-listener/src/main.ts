/** The distributed chain-listener (`docker compose up`, one per chain): deposits of `NEXO_CHAIN` against EventStoreDB and Kafka. */
import { createLogger } from '#observability';
import { ChainListenerConfigError, loadChainListenerConfig, type ChainListenerConfig } from './chain-listener.config.js';
import { startChainListenerProcess } from './chain-listener.process.js';

async function main(): Promise<void> {
  let config: ChainListenerConfig;
  try {
    config = loadChainListenerConfig();
  } catch (error) {
    if (error instanceof ChainListenerConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, name: 'chain-listener' });
  const running = await startChainListenerProcess(config, logger);
  logger.info({ url: running.url, chain: config.chain.slug, chainId: config.chain.chainId, db: config.dbFile }, 'NEXO ROUTE chain-listener running');

  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'shutting down: finishing the step in hand, saving the cursor');
    const timer = setTimeout(() => {
      logger.error('shutdown took over 20 s; exiting');
      process.exit(1);
    }, 20_000);
    timer.unref();
    await running.stop();
    logger.info('stopped cleanly');
    logger.flush();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
