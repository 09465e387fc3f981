import { readlinkSync } from 'node:fs';
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
    // /proc/thread-self → "<pid>/task/<tid>": a thread's tid is what setpriority(2) takes on Linux.
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return undefined;
    const nice = Math.min(19, getPriority(tid) + by);
    setPriority(tid, nice);
    return nice;
  } catch {
    return undefined;
  }
}
