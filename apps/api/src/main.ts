/** `npm start`: the embedded default — SQLite event store, in-process bus and workers, carrier simulator. */
import 'reflect-metadata';
import { createLogger } from '#observability';
import { ConfigError, loadConfig } from './config.js';
import { createApp } from './app.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, name: 'api' });
  const running = await createApp(config, logger);
  await running.app.listen({ port: config.port, host: config.host });
  logger.info({ port: config.port, db: config.dbFile }, 'NEXO ROUTE listening');

  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'shutting down: draining requests, flushing the event store');
    const timer = setTimeout(() => {
      logger.error('shutdown took over 20 s; exiting');
      process.exit(1);
    }, 20_000);
    timer.unref();
    await running.close();
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
