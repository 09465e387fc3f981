/**
 * The body of the webhook thread (the embedded default): a relay of its own
 * follows the log for the webhooks topic into the thread's own file (bus and
 * delivery rows), and the sender posts from there, on an event loop beside
 * the API's. Nothing here appends to the log. See `WebhooksThread`.
 */
import { Writable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { InProcessMessageBus, Relay, TOPICS } from '#bus';
import { SqliteEventStore } from '#eventstore';
import { createLogger } from '#observability';
import { attachReadModels, openLocalDb } from '#projections';
import { AesGcmCipher } from '#security';
import { lookupsOn } from '../lookups.js';
import { createRelayRoute } from '../relay.routes.js';
import type { FromWebhooksThread, ToWebhooksThread, WebhookOutcome, WebhooksThreadData } from './webhooks-thread.js';
import { startWebhooks } from './webhooks.worker.js';

/**
 * The relay reads the log at most every this many ms (unless it is behind by a full page): the
 * commits of that stretch then cost this thread one transaction and one wake-up of the sender,
 * instead of one per commit of the log. Measured (bench:pipeline, full speed): settled 2,120-2,188
 * OTPs/s against 1,986-2,057 without it; receipt → webhook p99 at 1,000/s 48 ms against 37 ms.
 */
const GATHER_MS = 10;

const port = parentPort;
if (port) {
  const data = workerData as WebhooksThreadData;
  const post = (m: FromWebhooksThread) => port.postMessage(m);
  const failure = (error: unknown) => (error instanceof Error ? error.stack ?? error.message : String(error));
  // Log lines go to the API's logger: one log stream for the process, redacted there as well.
  const logger = createLogger({
    level: data.logLevel,
    destination: new Writable({
      write(chunk, _encoding, done) {
        post({ kind: 'log', line: String(chunk) });
        done();
      },
    }),
  });
  // Attempt outcomes for the API's registry, gathered per turn of the event loop.
  let outcomes: WebhookOutcome[] = [];
  const webhookAttempt = (outcome: WebhookOutcome) => {
    if (outcomes.push(outcome) > 1) return;
    setImmediate(() => {
      post({ kind: 'attempts', outcomes });
      outcomes = [];
    });
  };

  // Small page caches: the relay follows the log's tail, the sender touches recent rows only.
  const store = SqliteEventStore.open(data.logFile, { readonly: true, cacheKib: 2 * 1024 });
  const db = openLocalDb(data.webhooksFile, { cacheKib: 4 * 1024 });
  attachReadModels(db, data.readModelsFile, 2 * 1024);
  const bus = new InProcessMessageBus(db, { onError: (error, group, topic) => logger.error({ err: error, group, topic }, 'consumer failed; retrying') });
  const relay = new Relay(store, bus, db, createRelayRoute(new Set([TOPICS.webhooks])), {
    name: 'webhooks-relay',
    gatherMs: GATHER_MS,
    onError: (error) => logger.error({ err: error }, 'webhook relay failed to publish; retrying'),
  });
  const cipherKeys = Object.fromEntries(Object.entries(data.cipherKeys).map(([id, key]) => [id, Buffer.from(key)]));
  const deps = { db, bus, cipher: new AesGcmCipher(cipherKeys, data.cipherKeyId), logger, clock: () => new Date(), metrics: { webhookAttempt } };
  relay.start();
  const starting = startWebhooks(deps, lookupsOn(db).directory, data.options);

  const shutdown = async () => {
    await relay.stop();
    const sender = await starting.catch(() => undefined);
    await sender?.stop();
    await bus.close();
    await store.close();
    if (db.open) db.close();
    post({ kind: 'stopped' });
    port.close();
    // Ends this thread only: a keep-alive socket must not hold it.
    process.exit(0);
  };

  starting.then(
    () => {
      logger.info({ file: data.webhooksFile, from: relay.checkpoint.toString() }, 'webhook thread started');
      post({ kind: 'ready' });
    },
    (error: unknown) => {
      post({ kind: 'failed', message: failure(error) });
      void shutdown();
    },
  );

  port.on('message', (m: ToWebhooksThread) => {
    if (m.kind === 'stop') {
      shutdown().catch((error: unknown) => {
        post({ kind: 'failed', message: failure(error) });
        process.exit(1);
      });
      return;
    }
    starting
      .then(async (sender) => ({ backlog: sender.backlog(), lag: await sender.consumer.lag() }))
      .then(
        (status) => post({ kind: 'status', id: m.id, ...status }),
        (error: unknown) => post({ kind: 'status', id: m.id, error: failure(error) }),
      );
  });
}
