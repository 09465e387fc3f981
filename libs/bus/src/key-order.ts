/**
 * Runs a batch with parallelism across keys and strict order within a key:
 * what a consumer needs to keep per-phone and per-account order while
 * thousands of different phones are served at once.
 */
import type { ConsumedMessage } from './message-bus.port.js';

/**
 * Longest stretch a batch runs without giving the event loop a turn. Handlers
 * mostly resolve at once (SQLite reads, in-memory decisions), so without this a
 * batch of hundreds runs as one task, and every HTTP request and commit reply
 * of the process waits behind it.
 */
const SLICE_MS = 4;

export async function forEachKeyInOrder<V>(
  batch: readonly ConsumedMessage<V>[],
  handle: (message: ConsumedMessage<V>) => Promise<void>,
  concurrency = 1024,
  /** The order that matters, when finer than the message key (an OTP within its account's messages). */
  laneOf: (message: ConsumedMessage<V>) => string = (m) => m.key,
): Promise<void> {
  const lanes = new Map<string, ConsumedMessage<V>[]>();
  for (const m of batch) {
    const key = laneOf(m);
    const lane = lanes.get(key);
    if (lane) lane.push(m);
    else lanes.set(key, [m]);
  }
  const queue = [...lanes.values()];
  const failures: unknown[] = [];
  let sliceStart = performance.now();
  const worker = async () => {
    for (let lane = queue.shift(); lane; lane = queue.shift()) {
      if (performance.now() - sliceStart > SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
      try {
        for (const m of lane) await handle(m);
      } catch (error) {
        failures.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
  if (failures.length > 0) throw failures[0];
}
