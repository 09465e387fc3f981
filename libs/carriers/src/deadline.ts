import { setMaxListeners } from 'node:events';

/**
 * A signal that aborts after `ms` (reason: a `TimeoutError`, as `AbortSignal.timeout` gives) or when
 * `also` aborts, whichever comes first; `clear()` once the work is done.
 *
 * Not `AbortSignal.any([AbortSignal.timeout(ms), also])`: on Node 20 the timeout signal inside `any`
 * holds only weak references and may be garbage collected before it fires (nodejs/node#57736), and
 * the request it guards then waits for ever. Found under load: a hung upstream's submit never ended.
 */
export function deadlineSignal(ms: number, also: AbortSignal): { signal: AbortSignal; clear(): void } {
  // One listener per submit in flight on the adapter's shared signal, each removed by clear(): more
  // than Node's 10 is the load, not a leak, and the warning would go to stderr outside the JSON log.
  setMaxListeners(0, also);
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(also.reason);
  if (also.aborted) controller.abort(also.reason);
  else also.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
  return {
    signal: controller.signal,
    clear() {
      clearTimeout(timer);
      also.removeEventListener('abort', onAbort);
    },
  };
}
