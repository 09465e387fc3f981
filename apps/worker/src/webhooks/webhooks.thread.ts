/**
 * The body of the webhook thread (the embedded default): a relay of its own
 * follows the log for the webhooks topic into the thread's own file (bus and
 * delivery rows), and the sender posts from there, on an event loop beside
 * the API's. Nothing here appends to the log. See `WebhooksThread`.
 */
import { Writable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { DirectMessageBus, Relay, TOPICS } from '#bus';
import { nameThread, SqliteEventStore } from '#eventstore';
import { createLogger } from '#observability';
import { attachReadModels, openLocalDb } from '#projections';
import { AesGcmCipher } from '#security';
import { lookupsOn } from '../lookups.js';
import { createRelayRoute } from '../relay.routes.js';
import type { FromWebhooksThread, ToWebhooksThread, WebhookOutcome, WebhooksThreadData } from './webhooks-thread.js';
import { UnsettledEvents } from './unsettled-events.js';
import { retireBusTable, startWebhooks } from './webhooks.worker.js';

/**
 * The relay reads the log at most every this many ms (unless it is behind by a full page): the
 * commits of that stretch then cost this thread one page read and one wake-up of the sender,
 * instead of one per commit of the log. Measured (bench:pipeline, full speed): settled 2,120-2,188
 * OTPs/s at 10 ms against 1,986-2,057 without it. Since the sender posts first (no transaction per
 * page), 5 ms against 10 (ABBA, three pairs each): receipt → webhook p50 34-36 against 37-39 ms at
 * full speed and 5-6 against 8-9 ms at 1,000/s, with the thread's CPU per OTP unchanged.
 */
const GATHER_MS = 5;
/**
 * After a page that gave the sender nothing to post (accounts without a webhook, which poll):
 * reading twice as often would only cost CPU (bench:api on the embedded default, whose accounts
 * have no webhook: this thread 33-35 µs per send at 5 ms against 23-28 at 10).
 */
const IDLE_GATHER_MS = 10;
/** Webhook attempt outcomes go to the main thread's metrics at most this often. */
const ATTEMPTS_EVERY_MS = 50;
const RELAY_NAME = 'webhooks-relay';
/**
 * After POSTs settle, the relay's checkpoint is saved again within this many ms (under load each
 * page saves it anyway): a crash then sends again only what was in flight around it.
 */
const CHECKPOINT_AFTER_MS = 50;

const port = parentPort;
if (port) {
  nameThread('nexo-webhooks');
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
  // Attempt outcomes for the API's registry, gathered for ATTEMPTS_EVERY_MS: each message wakes the
  // main thread (per turn of this loop it was ~300 messages a second at 1,000 OTPs/s).
  let outcomes: WebhookOutcome[] = [];
  let attemptsTimer: NodeJS.Timeout | undefined;
  const postAttempts = () => {
    attemptsTimer = undefined;
    if (outcomes.length === 0) return;
    post({ kind: 'attempts', outcomes });
    outcomes = [];
  };
  const webhookAttempt = (outcome: WebhookOutcome) => {
    outcomes.push(outcome);
    attemptsTimer ??= setTimeout(postAttempts, ATTEMPTS_EVERY_MS);
  };

  // Small page caches: the relay follows the log's tail, the sender touches recent rows only.
  const store = SqliteEventStore.open(data.logFile, { readonly: true, cacheKib: 2 * 1024 });
  const db = openLocalDb(data.webhooksFile, { cacheKib: 4 * 1024 });
  attachReadModels(db, data.readModelsFile, 2 * 1024);
  // The relay hands each page straight to the sender's consumer: no bus table in between. Measured
  // (bench:pipeline, full speed, interleaved): this thread's CPU 225 against 248 µs per OTP.
  const bus = new DirectMessageBus();
  // The sender posts a new event first and records only what it must retry (WebhookOptions.postFirst);
  // what it writes (retry rows, per-send URLs, account webhooks) is durable before the relay's
  // checkpoint moves, and the events it has in flight with no row hold the checkpoint back until
  // they settle, so a crash relays them again.
  let checkpointTimer: NodeJS.Timeout | undefined;
  const saveCheckpoint = () => {
    checkpointTimer = undefined;
    if (!db.open) return;
    try {
      relay.saveCheckpoint();
    } catch (error) {
      logger.error({ err: error }, 'webhook relay: saving the checkpoint failed; the next page saves it');
    }
  };
  let takenBefore = 0;
  const unsettled = new UnsettledEvents(() => {
    checkpointTimer ??= setTimeout(saveCheckpoint, CHECKPOINT_AFTER_MS);
  });
  const relay = new Relay(store, bus, db, createRelayRoute(new Set([TOPICS.webhooks])), {
    name: RELAY_NAME,
    gatherMs: () => {
      const posted = unsettled.taken !== takenBefore;
      takenBefore = unsettled.taken;
      return posted ? GATHER_MS : IDLE_GATHER_MS;
    },
    onError: (error) => logger.error({ err: error }, 'webhook relay: the sender could not record a page; retrying'),
    heldFrom: () => {
      const first = unsettled.first();
      return first === undefined ? undefined : BigInt(first);
    },
  });
  if (retireBusTable(db, RELAY_NAME)) logger.warn('webhook messages were left in the bus table of an older version: relaying the log again (delivery rows make repeats no-ops)');
  const cipherKeys = Object.fromEntries(Object.entries(data.cipherKeys).map(([id, key]) => [id, Buffer.from(key)]));
  const deps = { db, bus, cipher: new AesGcmCipher(cipherKeys, data.cipherKeyId), logger, clock: () => new Date(), metrics: { webhookAttempt } };
  relay.start();
  const starting = startWebhooks(deps, lookupsOn(db).directory, { ...data.options, postFirst: unsettled });

  const shutdown = async () => {
    await relay.stop();
    const sender = await starting.catch(() => undefined);
    await sender?.stop();
    // The POSTs that were in flight have settled: the checkpoint goes past them.
    clearTimeout(checkpointTimer);
    saveCheckpoint();
    await bus.close();
    await store.close();
    if (db.open) db.close();
    clearTimeout(attemptsTimer);
    postAttempts();
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
      // Lag: events of the log the relay has not handed to the sender yet.
      .then(async (sender) => ({ backlog: sender.backlog(), lag: Math.max(0, Number((await store.headPosition()) - relay.checkpoint)) }))
      .then(
        (status) => post({ kind: 'status', id: m.id, ...status }),
        (error: unknown) => post({ kind: 'status', id: m.id, error: failure(error) }),
      );
  });
}
