/** `npm start`: the embedded default — SQLite event store, in-process bus and workers, carrier simulator. */
import 'reflect-metadata';
import { runProcess } from '#observability';
import { ConfigError, loadConfig } from './config.js';
import { createApp } from './app.js';

runProcess({
  name: 'api',
  loadConfig: () => loadConfig(),
  configError: ConfigError,
  logLevel: (config) => config.logLevel,
  drainMessage: 'draining requests, flushing the event store',
  start: async (config, logger) => {
    const running = await createApp(config, logger);
    await running.app.listen({ port: config.port, host: config.host });
    return { fields: { port: config.port, db: config.dbFile }, stop: () => running.close() };
  },
});
