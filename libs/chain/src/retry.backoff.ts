/**
 * Exponential backoff with jitter for RPC outages. Kept apart from the
 * scanner so the scanner stays a function of its cursor: a failed step
 * changes nothing, and this helper decides when to try it again.
 */
import { isRetryableChainError } from './chain-client.port.js';

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** Fraction of the delay randomized (0..1), so many listeners do not hammer a recovering node in step. */
  jitter?: number;
}

/** Delay before retry number `attempt` (1-based). `random` in [0, 1) is injected for tests. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const { initialMs = 500, maxMs = 30_000, factor = 2, jitter = 0.2 } = options;
  const base = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt - 1));
  return Math.round(base * (1 - jitter + 2 * jitter * random()));
}

export interface RetryOptions extends BackoffOptions {
  /** Total attempts, the first included. Unbounded when absent: a listener outlives any outage. */
  maxAttempts?: number;
  /** Which failures are worth waiting out; retryable ChainErrors by default. */
  isRetryable?: (error: unknown) => boolean;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  signal?: AbortSignal;
  random?: () => number;
}

export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { maxAttempts = Number.POSITIVE_INFINITY, isRetryable = isRetryableChainError, onRetry, signal, random } = options;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (e) {
      if (!isRetryable(e) || attempt >= maxAttempts) throw e;
      const delay = backoffDelay(attempt, options, random);
      onRetry?.(e, attempt, delay);
      signal?.throwIfAborted();
      await sleep(delay, signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort(): void {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', abort, { once: true });
  });
}
