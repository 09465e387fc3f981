/**
 * The webhook sender on a thread of its own (the embedded SQLite default):
 * this is the API's handle on it. Webhooks are the pipeline's last step and
 * its largest share of work (an HTTP client request per status change); on
 * their own event loop they neither wait behind the API's requests and the
 * other consumers nor hold them up.
 *
 * The thread follows the log with a relay of its own (webhooks topic only;
 * the relay beside the other consumers leaves that topic out), into a file
 * only it writes. What crosses between the threads: attempt outcomes (for
 * the API's Prometheus registry), log lines (written by the API's logger),
 * and, on request, backlog and consumer lag. A thread that dies is started
 * again (WebhooksThread below).
 */
import { Worker } from 'node:worker_threads';
import { ThreadRestarts, threadScriptUrl } from '#eventstore';
import type { Logger } from '#observability';
import type { WorkerMetrics } from '../worker.deps.js';
import type { WebhookOptions } from './webhooks.worker.js';

export interface WebhooksThreadData {
  logFile: string;
  readModelsFile: string;
  /** The thread's own file: its relay checkpoint, bus and delivery rows. */
  webhooksFile: string;
  cipherKeys: Record<string, Uint8Array>;
  cipherKeyId: string;
  logLevel: string;
  options?: WebhookOptions;
}

export type WebhookOutcome = Parameters<Required<WorkerMetrics>['webhookAttempt']>[0];

export type ToWebhooksThread = { kind: 'status'; id: number } | { kind: 'stop' };
export type FromWebhooksThread =
  | { kind: 'ready' }
  | { kind: 'failed'; message: string }
  | { kind: 'status'; id: number; backlog: number; lag: number }
  | { kind: 'status'; id: number; error: string }
  | { kind: 'attempts'; outcomes: WebhookOutcome[] }
  | { kind: 'log'; line: string }
  | { kind: 'stopped' };

/** The sender as the other workers see it: wherever it runs, it reports its backlog and lag, and stops. */
export interface WebhookSender {
  backlog(): number;
  lag(): Promise<number>;
  stop(): Promise<void>;
}

export interface WebhooksThreadOptions extends WebhooksThreadData {
  logger: Logger;
  metrics?: WorkerMetrics;
  /** A thread that died was started again (its death is logged). */
  onRestart?: () => void;
}

/** How long `stop` lets the thread finish the requests in flight before ending it. */
const STOP_TIMEOUT_MS = 30_000;

/**
 * The webhook sender's thread, started again whenever it dies (a bug's uncaught error, its heap
 * limit, its file failing; when: ThreadRestarts): its relay resumes from its checkpoint in its own file, so what it had
 * not sent waits in the log meanwhile and goes out once it runs again. While it is down (the wait
 * and the new thread's start) `healthy()` is false, which readiness reports.
 */
export class WebhooksThread implements WebhookSender {
  private run: ThreadRun;
  private down: Error | undefined;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly restarts = new ThreadRestarts();

  /** Starts the thread; resolves once its relay and sender run (rejects with its start error). */
  static async start(options: WebhooksThreadOptions): Promise<WebhooksThread> {
    const run = new ThreadRun(options);
    try {
      await run.ready;
    } catch (error) {
      await run.exited;
      throw error;
    }
    return new WebhooksThread(options, run);
  }

  private constructor(
    private readonly options: WebhooksThreadOptions,
    run: ThreadRun,
  ) {
    this.run = run;
    this.watch(run);
  }

  private watch(run: ThreadRun): void {
    const startedAt = Date.now();
    void run.exited.then((error) => {
      if (this.stopping) return;
      this.down = error;
      const waitMs = this.restarts.next(Date.now() - startedAt);
      this.options.logger.error({ err: error, restartInMs: waitMs }, 'the webhook thread stopped; starting it again (webhooks wait in the log meanwhile)');
      this.restartTimer = setTimeout(() => this.restart(), waitMs);
    });
  }

  private restart(): void {
    this.restartTimer = undefined;
    if (this.stopping) return;
    const run = new ThreadRun(this.options);
    this.run = run;
    this.options.onRestart?.();
    run.ready.then(
      () => {
        if (this.run === run && !this.stopping) this.down = undefined;
      },
      // Its exit follows, and watch() starts the next one.
      () => undefined,
    );
    this.watch(run);
  }

  /** Running (false while a thread that died waits to be started again). */
  healthy(): boolean {
    return this.down === undefined;
  }

  /** Deliveries still to be made, as of the last `lag` answer. */
  backlog(): number {
    return this.run.lastBacklog;
  }

  /** Webhook messages not yet consumed (and, as a side effect, a fresh backlog). */
  lag(): Promise<number> {
    if (this.down) return Promise.reject(this.down);
    return this.run.lag();
  }

  /** Ends the running thread at once, as a crash would; it is started again like after one. For tests. */
  async crash(): Promise<void> {
    await this.run.terminate();
  }

  /** Stops the relay, then the sender (requests in flight finish), then the thread. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    await this.run.stop();
  }
}

/** One thread, from its start to its exit. */
class ThreadRun {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(lag: number): void; reject(error: Error): void }>();
  private failure: Error | undefined;
  lastBacklog = 0;
  readonly ready: Promise<void>;
  /** Resolves, when the thread has exited, with why (an error even for a clean stop, which nobody asks). */
  readonly exited: Promise<Error>;

  constructor(options: WebhooksThreadOptions) {
    // What is not data stays here: functions cannot be sent to a thread.
    const { logger, metrics, onRestart: _onRestart, ...data } = options;
    // The default young generation: with an 8 MB one the webhook step's p99 got worse. The
    // old-generation limit only stops a runaway (the relay's facts and the queued rows are bounded).
    this.worker = new Worker(threadScriptUrl(import.meta.url, './webhooks.thread.js'), {
      workerData: data satisfies WebhooksThreadData,
      resourceLimits: { maxOldGenerationSizeMb: 128 },
    });
    let started: () => void;
    let failed: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      started = resolve;
      failed = reject;
    });
    // Nobody may be waiting for `ready` (a restart): its rejection is not unhandled.
    this.ready.catch(() => undefined);
    this.worker.on('message', (m: FromWebhooksThread) => {
      switch (m.kind) {
        case 'ready':
          started();
          return;
        case 'failed':
          this.failure = new Error(m.message);
          failed(this.failure);
          return;
        case 'status': {
          const p = this.pending.get(m.id);
          this.pending.delete(m.id);
          if ('error' in m) p?.reject(new Error(m.error));
          else {
            this.lastBacklog = m.backlog;
            p?.resolve(m.lag);
          }
          return;
        }
        case 'attempts':
          for (const outcome of m.outcomes) metrics?.webhookAttempt?.(outcome);
          return;
        case 'log':
          relayLogLine(logger, m.line);
          return;
        case 'stopped':
          return;
      }
    });
    this.worker.on('error', (error) => {
      this.failure = error;
      failed(error);
    });
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', (code) => {
        const error = this.failure ?? new Error(`the webhook thread exited (code ${code})`);
        failed(error);
        for (const p of this.pending.values()) p.reject(error);
        this.pending.clear();
        this.failure = error;
        resolve(error);
      }),
    );
  }

  lag(): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ kind: 'status', id } satisfies ToWebhooksThread);
    });
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
    await this.exited;
  }

  async stop(): Promise<void> {
    this.worker.postMessage({ kind: 'stop' } satisfies ToWebhooksThread);
    const timer = setTimeout(() => void this.worker.terminate(), STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

/** A JSON line from the thread's pino, written again by the API's logger. */
function relayLogLine(logger: Logger, line: string): void {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return;
  }
  const { level, msg, time: _t, pid: _p, hostname: _h, name: _n, ...fields } = entry;
  const label = typeof level === 'number' ? logger.levels.labels[level] : undefined;
  if (label === undefined) return;
  const write = (logger as unknown as Record<string, unknown>)[label];
  if (typeof write === 'function') (write as (obj: object, msg?: string) => void).call(logger, { ...fields, thread: 'webhooks' }, typeof msg === 'string' ? msg : undefined);
}
