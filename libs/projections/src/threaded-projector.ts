/**
 * The default projections run on a thread of their own (embedded SQLite
 * mode): this is the API's handle on it. It knows how far the thread has
 * applied the log (the thread reports after every committed page), answers
 * read-your-writes waits, measures the lag against the log's head, and stops
 * the thread. The read models are in their own file, which only the thread
 * writes; this process reads them through any connection (an ATTACH).
 */
import { Worker } from 'node:worker_threads';
import { type EventStore, ThreadRestarts, threadScriptUrl } from '#eventstore';
import { pageReader, type ReadPage } from './log-reader.js';
import type { ProjectionProgress } from './projector.js';
import { type Lag, lagSince, measureLag, PositionWaiters } from './progress.js';
import type { FromProjectorThread, ProjectorThreadData, ToProjectorThread } from './projector.thread.js';

export interface ThreadedProjectorOptions extends ProjectorThreadData {
  /** This thread's store on the same log: the head and the lag are measured from it. */
  store: EventStore;
  /** A failed page (retried by the thread from its checkpoint). */
  onError?: (error: Error) => void;
  /** A thread that died was started again (its death went to `onError`). */
  onRestart?: () => void;
  lagIntervalMs?: number;
}

/**
 * A thread that dies (a bug, its heap limit) is started again (when: ThreadRestarts). It resumes
 * from the read models' checkpoints, and the lag (so readiness) shows the time it was down.
 */
export class ThreadedProjector implements ProjectionProgress {
  private worker!: Worker;
  private readonly store: EventStore;
  private readonly read: ReadPage;
  private applied = 0n;
  private latest: Record<string, bigint> = {};
  private latestLag: Lag = { events: 0, seconds: 0, head: 0n, position: 0n };
  private readonly waiters = new PositionWaiters();
  private lagTimer: NodeJS.Timeout | undefined;
  private failure: Error | undefined;
  private exited!: Promise<void>;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly restarts = new ThreadRestarts();

  /** Starts the thread and resolves once it has caught up with the log (as `Projector.catchUp` then `start`). */
  static async start(options: ThreadedProjectorOptions): Promise<ThreadedProjector> {
    const projector = new ThreadedProjector(options);
    try {
      await projector.ready;
    } catch (error) {
      // A thread that cannot start is not started again: the caller hears why.
      await projector.stop();
      throw error;
    }
    return projector;
  }

  private ready!: Promise<void>;

  private constructor(private readonly options: ThreadedProjectorOptions) {
    this.store = options.store;
    this.read = pageReader(options.store);
    this.spawn();
    this.lagTimer = setInterval(() => {
      this.lag().catch(() => undefined);
    }, options.lagIntervalMs ?? 500);
    this.lagTimer.unref();
  }

  private spawn(): void {
    const { options } = this;
    const data: ProjectorThreadData = {
      logFile: options.logFile,
      readModelsFile: options.readModelsFile,
      ...(options.expiryMs !== undefined ? { expiryMs: options.expiryMs } : {}),
      ...(options.coalesceMs !== undefined ? { coalesceMs: options.coalesceMs } : {}),
    };
    // Pages are applied and dropped, so the heap stays small; the limit only stops a runaway.
    const worker = new Worker(threadScriptUrl(import.meta.url, './projector.thread.js'), { workerData: data, resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 8 } });
    this.worker = worker;
    const startedAt = Date.now();
    let started: () => void;
    let failed: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      started = resolve;
      failed = reject;
    });
    // After a restart nobody waits for `ready`: its rejection is not unhandled.
    this.ready.catch(() => undefined);
    worker.on('message', (m: FromProjectorThread) => {
      switch (m.kind) {
        case 'ready':
          this.progress(m.position, m.checkpoints);
          started();
          return;
        case 'progress':
          this.progress(m.position, m.checkpoints);
          return;
        case 'error': {
          const error = Object.assign(new Error(m.message), m.stack ? { stack: m.stack } : {});
          this.failure = error;
          if (m.fatal) failed(error);
          else this.options.onError?.(error);
          return;
        }
        case 'stopped':
          return;
      }
    });
    worker.on('error', (error) => {
      this.failure = error;
      failed(error);
      this.options.onError?.(error);
    });
    this.exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        const error = new Error(`the projector thread exited (code ${code})`);
        failed(error);
        if (!this.stopping) {
          // Read models stop moving meanwhile: the lag grows, and readiness fails once it passes its bound.
          this.failure = error;
          const waitMs = this.restarts.next(Date.now() - startedAt);
          this.options.onError?.(new Error(`${error.message}; starting it again in ${waitMs} ms`, { cause: error }));
          this.restartTimer = setTimeout(() => {
            this.restartTimer = undefined;
            if (this.stopping) return;
            this.spawn();
            this.options.onRestart?.();
          }, waitMs);
        }
        resolve();
      }),
    );
  }

  /** Ends the thread at once, as a crash would; it is started again like after one. For tests. */
  async crash(): Promise<void> {
    await this.worker.terminate();
    await this.exited;
  }

  private progress(position: bigint, checkpoints: Record<string, bigint>): void {
    if (position > this.applied) this.applied = position;
    this.latest = checkpoints;
    // What the thread applied since the last measure is no longer lag.
    this.latestLag = lagSince(this.latestLag, this.applied);
    this.waiters.release(this.applied);
  }

  /** The lowest checkpoint the thread reported: everything up to it is in every read model. */
  position(): bigint {
    return this.applied;
  }

  checkpoints(): Record<string, bigint> {
    return { ...this.latest };
  }

  /** The last error the thread reported, if any. */
  error(): Error | undefined {
    return this.failure;
  }

  /** Measures the lag now: one head read and, when behind, one event read. */
  async lag(): Promise<Lag> {
    const measured = await measureLag(this.store, this.read, () => this.applied);
    // Another measure may have ended meanwhile with a later position: keep the later.
    if (measured.position >= this.latestLag.position) this.latestLag = measured;
    return this.latestLag;
  }

  lastLag(): Lag {
    return this.latestLag;
  }

  /** Resolves once every projection has applied the log up to `position`; rejects after `timeoutMs`. */
  waitFor(position: bigint, timeoutMs = 5_000): Promise<void> {
    if (this.applied >= position) return Promise.resolve();
    const waiting = this.waiters.wait(position, timeoutMs, () => this.applied);
    this.worker.postMessage({ kind: 'hurry', position } satisfies ToProjectorThread);
    return waiting;
  }

  /** Read-your-writes: resolves once the read models reflect everything appended before this call. */
  async waitUntilCaughtUp(timeoutMs = 5_000): Promise<void> {
    await this.waitFor(await this.store.headPosition(), timeoutMs);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    if (this.lagTimer !== undefined) clearInterval(this.lagTimer);
    this.lagTimer = undefined;
    this.worker.postMessage({ kind: 'stop' } satisfies ToProjectorThread);
    // The thread closes its files and exits; one that hangs is ended (its transactions roll back).
    const timer = setTimeout(() => void this.worker.terminate(), 30_000);
    await this.exited;
    clearTimeout(timer);
  }
}
