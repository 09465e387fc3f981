/**
 * A bus that stores nothing: `publish` hands the messages to the topic's one
 * consumer and resolves once its handler has, that is once the effect is
 * durable. It is for a relay whose only consumer keeps durable rows of its own
 * (the webhook thread's delivery rows): the relay moves its checkpoint after
 * the effect, and a crash in between republishes the page from the checkpoint,
 * which an idempotent consumer absorbs. Against the embedded bus this saves a
 * table write, a read and an offset commit per page, and a wake-up between them.
 *
 * Publishing to a topic nobody consumes yet is refused (`unavailable`): the
 * relay keeps the page and tries again. Values are handed over as they are
 * (no JSON round trip), so a consumer must not rely on receiving a copy.
 */
import { type BatchHandler, BusError, type BusHealth, type ConsumedMessage, type Consumer, type ConsumeOptions, embeddedBusHealth, type MessageBus, type OutgoingMessage } from '../message-bus.port.js';

interface Subscriber {
  handler: BatchHandler;
  batchSize: number;
  offset: number;
  /** The publish being handled: stop() waits for it. */
  busy: Promise<void>;
}

export class DirectMessageBus implements MessageBus {
  private readonly subscribers = new Map<string, Subscriber>();
  private closed = false;

  async publish(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (this.closed) throw new BusError('closed', 'bus is closed');
    const s = this.subscribers.get(topic);
    if (!s) throw new BusError('unavailable', `nothing consumes ${topic} yet`);
    if (messages.length === 0) return;
    const run = s.busy.then(async () => {
      for (let i = 0; i < messages.length; i += s.batchSize) {
        const batch: ConsumedMessage[] = messages.slice(i, i + s.batchSize).map((m) => ({
          topic,
          key: m.key,
          value: m.value,
          headers: m.headers ?? {},
          offset: String(++s.offset),
          partition: 0,
        }));
        await s.handler(batch);
      }
    });
    // Publishes to a topic run one after another (per-key order); a failed one leaves the next free to run.
    s.busy = run.catch(() => undefined);
    return run;
  }

  async consume<V>(_group: string, topic: string, handler: BatchHandler<V>, options: ConsumeOptions = {}): Promise<Consumer> {
    if (this.closed) throw new BusError('closed', 'bus is closed');
    if (this.subscribers.has(topic)) throw new Error(`${topic} already has a consumer on this bus`);
    const s: Subscriber = { handler: handler as BatchHandler, batchSize: options.batchSize ?? 500, offset: 0, busy: Promise.resolve() };
    this.subscribers.set(topic, s);
    return {
      // Nothing waits here: what is not handled yet is still the relay's, behind its checkpoint.
      lag: async () => 0,
      stop: async () => {
        if (this.subscribers.get(topic) === s) this.subscribers.delete(topic);
        await s.busy;
      },
    };
  }

  async health(): Promise<BusHealth> {
    return embeddedBusHealth(this.closed);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.subscribers.values()].map((s) => s.busy));
  }
}
