/** `npm start`: the embedded default — SQLite event store, in-process bus and workers, carrier simulator. */
import 'reflect-metadata';
import { join } from 'node:path';
import { listenOn, runProcess, startProbeServer, startingMetrics } from '#observability';
import { ConfigError, loadConfig } from './config.js';
import { createApp } from './app.js';

runProcess({
  name: 'api',
  loadConfig: () => loadConfig(),
  configError: ConfigError,
  logLevel: (config) => config.logLevel,
  drainMessage: 'draining requests, flushing the event store',
  dataFiles: (config) => [config.dbFile, config.readModelsFile, config.stateFile, config.webhooksFile, join(config.dataDir, 'secrets.json')],
  start: async (config, logger) => {
    // Until the read models have caught up (a new replica replays the whole log), the port answers the
    // probes: alive, not ready, and a /metrics that says so, so neither an orchestrator nor Prometheus
    // takes a long catch-up for a dead process. The API takes the port over once it can serve.
    const starting = startingMetrics();
    const probes = await startProbeServer({
      port: config.port,
      host: config.host,
      readiness: async () => ({ ok: false, starting: true }),
      metrics: () => starting,
      // Requests for the API meanwhile: retry, in the API's error shape (a 404 would read as final).
      otherwise: { ok: false, error: 'internal', message: 'the server is starting; nothing was changed, try again' },
    });
    let running: Awaited<ReturnType<typeof createApp>>;
    try {
      running = await createApp(config, logger);
    } finally {
      await probes.close();
    }
    await listenOn(config.host, config.port, () => running.app.listen({ port: config.port, host: config.host }));
    return { fields: { port: config.port, db: config.dbFile }, stop: () => running.close() };
  },
});
