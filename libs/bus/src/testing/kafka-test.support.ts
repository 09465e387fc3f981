/**
 * What the Kafka tests beyond the contract suite share: whether kcat (and so
 * the mock cluster) is here, the short group timings that keep joins and
 * hand-overs within a test's patience, a producer other than the relay, and a sleep. Polling with a deadline
 * is `until` from #testing.
 */
import { spawnSync } from 'node:child_process';
import kafkajs from 'kafkajs';
import type { KafkaBusOptions } from '../adapters/kafka.message-bus.js';

/** kcat starts librdkafka's mock cluster; without it these tests cannot run here. */
export const kcatInstalled = spawnSync('kcat', ['-V'], { stdio: 'ignore' }).error === undefined;

/** `describe` when kcat is installed, else a skipped block that says why in its name. */
export const describeWithKcat = (name: string, body: () => void): void =>
  kcatInstalled ? describe(name, body) : describe.skip(`${name} (skipped: kcat is not installed; apt-get install -y kcat)`, body);

/** The contract suite's timings: the mock holds a group a member left for the session timeout - 1 s. */
export const fastKafkaOptions = (brokers: string[], clientId: string): KafkaBusOptions => ({
  brokers,
  clientId,
  heartbeatIntervalMs: 500,
  sessionTimeoutMs: 2_500,
  rebalanceTimeoutMs: 5_000,
  maxWaitTimeMs: 100,
  retryDelayMs: 100,
  maxRetryDelayMs: 400,
});

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends raw records as a producer other than the relay would: bytes the port may not decode. */
export async function sendForeign(brokers: string[], topic: string, messages: { key: string; value: string }[]): Promise<void> {
  const foreign = new kafkajs.Kafka({ brokers, clientId: 'foreign', logLevel: kafkajs.logLevel.NOTHING }).producer({
    createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
  });
  await foreign.connect();
  try {
    await foreign.send({ topic, messages });
  } finally {
    await foreign.disconnect();
  }
}

/**
 * Asks `${base}/health/ready` until it answers 503, timing every answer: for
 * the tests that take a process's Kafka away. `slowestMs` covers each probe
 * from the first to the last, and a few more after the first 503.
 */
export async function probeUntilNotReady(base: string, { timeoutMs = 15_000, after = 5 } = {}): Promise<{ body: Record<string, unknown>; slowestMs: number }> {
  let slowestMs = 0;
  const probe = async () => {
    const t0 = performance.now();
    const res = await fetch(`${base}/health/ready`);
    const body = (await res.json()) as Record<string, unknown>;
    slowestMs = Math.max(slowestMs, performance.now() - t0);
    return { status: res.status, body };
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { status, body } = await probe();
    if (status === 503) {
      for (let i = 0; i < after; i++) {
        expect((await probe()).status).toBe(503);
        await sleep(100);
      }
      return { body, slowestMs };
    }
    if (Date.now() > deadline) throw new Error(`${base}/health/ready still answered ${status} after ${timeoutMs} ms: ${JSON.stringify(body)}`);
    await sleep(50);
  }
}
