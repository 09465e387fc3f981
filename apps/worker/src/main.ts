/** The distributed worker (`docker compose up`): the delivery pipeline against EventStoreDB and Kafka. */
import { runProcess } from '#observability';
import { loadWorkerConfig, WorkerConfigError } from './worker.config.js';
import { startWorkerProcess } from './worker.process.js';

runProcess({
  name: 'worker',
  loadConfig: () => loadWorkerConfig(),
  configError: WorkerConfigError,
  logLevel: (config) => config.logLevel,
  drainMessage: 'finishing the batches in hand, committing, leaving the groups',
  dataFiles: (config) => [config.dbFile],
  start: async (config, logger) => {
    const running = await startWorkerProcess(config, logger);
    return { fields: { url: running.url, relay: config.relay, db: config.dbFile }, stop: () => running.stop() };
  },
});
