/**
 * Waiting in tests for work another part of the system does in its own time
 * (a consumer, a socket, a child process): poll, with a deadline.
 */

/** How long `until` waits in all, and how long it sleeps between probes. */
export interface UntilOptions {
  /** Give up after this long; 5 s unless given. */
  timeoutMs?: number;
  /** Sleep this long between probes; 10 ms unless given. */
  everyMs?: number;
}

/**
 * Calls `probe` every `everyMs` until it returns something other than
 * undefined or false, and returns that (`true` for a plain condition). After
 * `timeoutMs` it throws `timed out after N ms waiting for <what>`; `what` may
 * be a function, so the message can say what was seen last. A probe that
 * throws ends the wait with its error.
 */
export async function until<T>(
  what: string | (() => string),
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 5_000, everyMs = 10 }: UntilOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
