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
 * and, on request, backlog and consumer lag.
 */
import { Worker } from 'node:worker_threads';
import { threadScriptUrl } from '#eventstore';
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
}

/** How long `stop` lets the thread finish the requests in flight before ending it. */
const STOP_TIMEOUT_MS = 30_000;

export class WebhooksThread implements WebhookSender {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(lag: number): void; reject(error: Error): void }>();
  private lastBacklog = 0;
  private failure: Error | undefined;
  private stopping = false;
  private readonly exited: Promise<void>;
  private readonly ready: Promise<void>;

  /** Starts the thread; resolves once its relay and sender run (rejects with its start error). */
  static async start(options: WebhooksThreadOptions): Promise<WebhooksThread> {
    const thread = new WebhooksThread(options);
    try {
      await thread.ready;
    } catch (error) {
      await thread.exited;
      throw error;
    }
    return thread;
  }

  private constructor(options: WebhooksThreadOptions) {
    const { logger, metrics, ...data } = options;
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
        if (!this.stopping) {
          this.failure = error;
          logger.error({ err: error }, 'the webhook thread stopped; webhooks wait in the log until the service restarts');
        }
        resolve();
      }),
    );
  }

  /** Running (a thread that died sends nothing more until a restart). */
  healthy(): boolean {
    return this.failure === undefined;
  }

  /** Deliveries still to be made, as of the last `lag` answer. */
  backlog(): number {
    return this.lastBacklog;
  }

  /** Webhook messages not yet consumed (and, as a side effect, a fresh backlog). */
  lag(): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ kind: 'status', id } satisfies ToWebhooksThread);
    });
  }

  /** Stops the relay, then the sender (requests in flight finish), then the thread. */
  async stop(): Promise<void> {
    this.stopping = true;
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
