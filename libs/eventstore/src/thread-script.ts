import { readlinkSync, writeFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
/**
 * The URL of a worker thread's script next to the calling module. Compiled,
 * it is the sibling `.js`; under ts-jest the sources run as `.ts` from the
 * repository, and a thread can only run the build's copy (`npm test` builds
 * first), found at the same path under `dist/`.
 */
export function threadScriptUrl(callerUrl: string, script: string): URL {
  if (!callerUrl.endsWith('.ts')) return new URL(script, callerUrl);
  const at = Math.max(callerUrl.lastIndexOf('/libs/'), callerUrl.lastIndexOf('/apps/'));
  if (at < 0) throw new Error(`cannot locate the compiled copy of ${callerUrl}`);
  return new URL(script, `${callerUrl.slice(0, at)}/dist${callerUrl.slice(at)}`);
}

/**
 * Lowers the calling thread's scheduling priority by `by` nice levels (Linux; a no-op elsewhere,
 * or where it is refused). For background threads (the projector's): when the cores are all
 * busy, the thread that answers API requests and dispatches OTPs runs first, and the background
 * work takes the time left over instead of an equal share. Returns the new nice value.
 */
export function lowerThreadPriority(by: number): number | undefined {
  try {
    const tid = threadId();
    if (tid === undefined) return undefined;
    const nice = Math.min(19, getPriority(tid) + by);
    setPriority(tid, nice);
    return nice;
  } catch {
    return undefined;
  }
}

/**
 * Names the calling thread (Linux, at most 15 bytes; a no-op elsewhere), so `top -H`, `ps -L` and
 * /proc/<pid>/task/<tid>/comm tell the log writer, the projector and the webhook sender apart
 * instead of showing every thread as `node`. The benches read it to report CPU per thread.
 */
export function nameThread(name: string): void {
  try {
    writeFileSync('/proc/thread-self/comm', name.slice(0, 15));
  } catch {
    // Not Linux, or /proc is not mounted: the thread keeps its inherited name.
  }
}

/** The calling thread's Linux tid: /proc/thread-self → "<pid>/task/<tid>" (what setpriority(2) takes). */
function threadId(): number | undefined {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  return Number.isInteger(tid) && tid > 0 ? tid : undefined;
}

/**
 * When to start a service thread again after it died: 1 s after, twice as late per death in a
 * row up to a minute, and 1 s again once one has run a minute (its death was a one-off). The
 * projector and the webhook thread use it; a thread that dies at once keeps backing off.
 */
export class ThreadRestarts {
  static readonly FIRST_MS = 1_000;
  static readonly MAX_MS = 60_000;
  static readonly STABLE_MS = 60_000;
  private waitMs = ThreadRestarts.FIRST_MS;

  /** The wait before the next start, for a thread that ran `ranMs` before it died. */
  next(ranMs: number): number {
    if (ranMs >= ThreadRestarts.STABLE_MS) this.waitMs = ThreadRestarts.FIRST_MS;
    const wait = this.waitMs;
    this.waitMs = Math.min(wait * 2, ThreadRestarts.MAX_MS);
    return wait;
  }
}
