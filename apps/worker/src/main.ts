/** The distributed worker (`docker compose up`): the delivery pipeline against EventStoreDB and Kafka. */
import { createLogger } from '#observability';
import { loadWorkerConfig, WorkerConfigError, type WorkerConfig } from './worker.config.js';
import { startWorkerProcess } from './worker.process.js';

async function main(): Promise<void> {
  let config: WorkerConfig;
  try {
    config = loadWorkerConfig();
  } catch (error) {
    if (error instanceof WorkerConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, name: 'worker' });
  const running = await startWorkerProcess(config, logger);
  logger.info({ url: running.url, relay: config.relay, db: config.dbFile }, 'NEXO ROUTE worker running');

  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'shutting down: finishing the batches in hand, committing, leaving the groups');
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
