/**
 * The body of the projector thread: the default projections over the SQLite
 * log, written to their own file by their own connection, so the API's event
 * loop neither applies events nor waits for read-model commits. It reports
 * its progress after every committed page; see `ThreadedProjector`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { lowerThreadPriority, nameThread, SqliteEventStore } from '#eventstore';
import { openLocalDb } from './local-db.js';
import { Projector } from './projector.js';
import { defaultProjections } from './read-models/all.js';

export interface ProjectorThreadData {
  logFile: string;
  readModelsFile: string;
  expiryMs?: number;
  coalesceMs?: number;
}

export type ToProjectorThread = { kind: 'hurry'; position: bigint } | { kind: 'stop' };
export type FromProjectorThread =
  | { kind: 'ready'; position: bigint; checkpoints: Record<string, bigint> }
  | { kind: 'progress'; position: bigint; checkpoints: Record<string, bigint> }
  | { kind: 'error'; message: string; stack?: string; fatal: boolean }
  | { kind: 'stopped' };

/**
 * Read models are background work: when every core is busy, the API's thread (which accepts,
 * dispatches and settles OTPs) runs first, and this thread applies events with the time left over
 * (it catches up as soon as a core is free; readers that need their own write hurry it). Measured
 * (bench:pipeline, full speed, interleaved): settled 2,024 and 1,860 OTPs/s against 1,898 and 1,781.
 */
const BACKGROUND_NICE = 10;

const port = parentPort;
if (port) {
  const data = workerData as ProjectorThreadData;
  nameThread('nexo-projector');
  lowerThreadPriority(BACKGROUND_NICE);
  const post = (m: FromProjectorThread) => port.postMessage(m);
  const failure = (error: unknown, fatal: boolean): FromProjectorThread => ({
    kind: 'error',
    message: error instanceof Error ? error.message : String(error),
    ...(error instanceof Error && error.stack ? { stack: error.stack } : {}),
    fatal,
  });
  // It reads the log's tail page by page: a small cache does.
  const store = SqliteEventStore.open(data.logFile, { readonly: true, cacheKib: 2 * 1024 });
  const db = openLocalDb(data.readModelsFile);
  const projector = new Projector({
    store,
    db,
    projections: defaultProjections({ expiryMs: data.expiryMs }),
    // Following live, the hot pages are few (today's stats cells, the newest OTP rows): part of the process's memory budget.
    cacheKib: 8 * 1024,
    ...(data.coalesceMs !== undefined ? { coalesceMs: data.coalesceMs } : {}),
    onPage: ({ position }) => post({ kind: 'progress', position, checkpoints: projector.checkpoints() }),
    onError: (error) => post(failure(error, false)),
  });
  let ready = false;
  let stopping = false;
  const shutdown = async () => {
    await projector.stop();
    db.close();
    await store.close();
    post({ kind: 'stopped' });
    port.close();
    // Ends this thread only; a pending read-your-writes timer must not hold it for its 5 s.
    process.exit(0);
  };
  port.on('message', (m: ToProjectorThread) => {
    if (m.kind === 'hurry') {
      // A reader waits for this position: cut the page gathering short until it is applied.
      projector.waitFor(m.position, 5_000).catch(() => undefined);
      return;
    }
    if (stopping) return;
    stopping = true;
    // During the first catch-up the stop waits for it (its transactions are short and atomic).
    if (ready) void shutdown();
  });
  try {
    await projector.catchUp();
    if (stopping) {
      await shutdown();
    } else {
      ready = true;
      post({ kind: 'ready', position: projector.position(), checkpoints: projector.checkpoints() });
      projector.start();
    }
  } catch (error) {
    post(failure(error, true));
    db.close();
    await store.close();
    port.close();
  }
}
