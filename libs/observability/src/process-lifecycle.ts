/**
 * How every NEXO ROUTE process starts and stops: files it creates are for its
 * own user only (umask 077); a configuration error exits
 * 78 (EX_CONFIG) with the message naming the variable; SIGTERM/SIGINT drain
 * within 20 s and exit 0, or exit 1 if draining hangs (one that comes while
 * starting stops it once started, or exits 1 if starting takes over 20 s
 * more); a start that fails exits 1 after one JSON log line naming why (its
 * stack a field of it).
 */
import { chmodSync, statSync } from 'node:fs';
import { pino } from 'pino';
import { createLogger, type Logger } from './logger.js';

export interface ProcessSpec<C> {
  name: string;
  loadConfig(): C;
  /** The process's own configuration error type: shown without a stack. */
  configError: new (...args: never[]) => Error;
  logLevel(config: C): string;
  /** Starts everything; returns what to log once running and how to stop. */
  start(config: C, logger: Logger): Promise<{ fields: Record<string, unknown>; stop(): Promise<void> }>;
  /** What draining means for this process, for the log line. */
  drainMessage: string;
  /** The process's own files (SQLite files with their -wal and -shm, secrets): narrowed to the owner at start. */
  dataFiles?(config: C): string[];
}

/**
 * Takes group and other permissions off these files and their SQLite companions (-wal, -shm) where
 * they have any: files an earlier version created before the umask, in a directory that was never
 * private. SQLite gives a new -wal or -shm the main file's mode, so the main file's matters most.
 * Returns the files narrowed.
 */
function narrowToOwner(files: readonly string[]): string[] {
  const narrowed: string[] = [];
  for (const file of files.flatMap((f) => [f, `${f}-wal`, `${f}-shm`])) {
    let mode: number;
    try {
      mode = statSync(file).mode;
    } catch {
      continue;
    }
    if ((mode & 0o077) === 0) continue;
    chmodSync(file, mode & 0o700);
    narrowed.push(file);
  }
  return narrowed;
}

export const SHUTDOWN_BUDGET_MS = 20_000;

/**
 * Exits once the log's last lines are written. The destination writes asynchronously: `flush()`
 * without waiting for it, then `process.exit`, sometimes lost the last line (the one saying why a
 * start failed), and `flush(cb)` answers at once without waiting for a write in flight (the
 * destination has no minimum length). Ending the stream waits for every write (stdout itself stays
 * open). The wait is bounded, so a stuck stdout cannot keep the process alive.
 */
async function exitAfterFlush(logger: Logger, code: number): Promise<never> {
  const stream = (logger as unknown as Record<symbol, NodeJS.WritableStream | undefined>)[pino.symbols.streamSym];
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    if (!stream) return logger.flush(done);
    stream.once('close', done);
    stream.once('error', done);
    stream.end();
  });
  process.exit(code);
}

export function runProcess<C>(spec: ProcessSpec<C>): void {
  // Every file the process creates (the SQLite files and their WAL, secrets, state) is its own user's
  // alone, also in a data directory that existed with a wider mode (one made by `mkdir -p`, a volume).
  process.umask(0o077);
  const main = async () => {
    let config: C;
    try {
      config = spec.loadConfig();
    } catch (error) {
      if (error instanceof spec.configError) {
        process.stderr.write(`${error.message}\n`);
        process.exit(78);
      }
      throw error;
    }
    const logger = createLogger({ level: spec.logLevel(config), name: spec.name });
    const narrowed = narrowToOwner(spec.dataFiles?.(config) ?? []);
    if (narrowed.length > 0) logger.warn({ files: narrowed }, 'data files were readable by other users: narrowed to the owner (0600)');
    // Asked to stop while starting (its port already answers the probes, and a replica may replay
    // the log for a while): without a handler the signal would end it at once and its buffered log
    // lines with it. It stops as soon as it has started, or, if starting takes longer than the
    // shutdown budget, exits as after a crash (every file recovers from that).
    let stopAsked: string | undefined;
    let startBudget: NodeJS.Timeout | undefined;
    const askedWhileStarting = (signal: string) => {
      if (stopAsked) return;
      stopAsked = signal;
      logger.info({ signal }, `asked to stop while starting: stopping once started (within ${SHUTDOWN_BUDGET_MS / 1000} s)`);
      startBudget = setTimeout(() => {
        logger.error(`still starting ${SHUTDOWN_BUDGET_MS / 1000} s after ${signal}; exiting without a clean stop`);
        void exitAfterFlush(logger, 1);
      }, SHUTDOWN_BUDGET_MS).unref();
    };
    process.on('SIGTERM', askedWhileStarting);
    process.on('SIGINT', askedWhileStarting);
    let running: Awaited<ReturnType<ProcessSpec<C>['start']>>;
    try {
      running = await spec.start(config, logger);
    } catch (error) {
      // A start that fails (the port taken, the host unknown, a file that cannot be opened) is one
      // JSON line like every other, with the error's code and stack as fields.
      logger.fatal({ err: error }, `NEXO ROUTE ${spec.name} could not start: ${error instanceof Error ? error.message : String(error)}`);
      return exitAfterFlush(logger, 1);
    } finally {
      process.off('SIGTERM', askedWhileStarting);
      process.off('SIGINT', askedWhileStarting);
      // Started (or failed): the shutdown's own budget applies from here.
      clearTimeout(startBudget);
    }
    logger.info(running.fields, `NEXO ROUTE ${spec.name} running`);

    const shutdown = async (signal: string) => {
      logger.info({ signal }, `shutting down: ${spec.drainMessage}`);
      const timer = setTimeout(() => {
        logger.error(`shutdown took over ${SHUTDOWN_BUDGET_MS / 1000} s; exiting`);
        process.exit(1);
      }, SHUTDOWN_BUDGET_MS);
      timer.unref();
      await running.stop();
      logger.info('stopped cleanly');
      await exitAfterFlush(logger, 0);
    };
    if (stopAsked) return void shutdown(stopAsked);
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
    process.once('SIGINT', () => void shutdown('SIGINT'));
  };
  main().catch((error: unknown) => {
    process.stderr.write(`fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
