/** The distributed chain-listener (`docker compose up`, one per chain): deposits of `NEXO_CHAIN` against EventStoreDB and Kafka. */
import { runProcess } from '#observability';
import { ChainListenerConfigError, loadChainListenerConfig } from './chain-listener.config.js';
import { startChainListenerProcess } from './chain-listener.process.js';

runProcess({
  name: 'chain-listener',
  loadConfig: () => loadChainListenerConfig(),
  configError: ChainListenerConfigError,
  logLevel: (config) => config.logLevel,
  drainMessage: 'finishing the step in hand, saving the cursor',
  dataFiles: (config) => [config.dbFile],
  start: async (config, logger) => {
    const running = await startChainListenerProcess(config, logger);
    return { fields: { url: running.url, chain: config.chain.slug, chainId: config.chain.chainId, db: config.dbFile }, stop: () => running.stop() };
  },
});
