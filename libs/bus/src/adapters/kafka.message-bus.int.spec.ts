/**
 * The Kafka adapter against librdkafka's mock cluster (see
 * testing/kafka-mock.cluster.ts): a real broker protocol, four partitions per
 * topic, consumer groups with rebalances and committed offsets, and the
 * idempotent producer (every publish here goes through one: the mock grants
 * it a producer id and takes its sequenced batches), all in one kcat process.
 *
 * Not tested here, because the mock cannot show it: CreateTopics (refused as
 * an unsupported version; topics exist on first use, which is all the adapter
 * relies on), replication and broker failover (one broker), and the broker
 * dropping a duplicated sequence number after a lost acknowledgement (a
 * network fault the mock does not inject for kafkajs). Each group's first
 * join costs the mock's fixed 3 s initial rebalance delay, which is most of
 * this file's run time.
 */
import { describeMessageBusContract } from '../testing/message-bus.contract.js';
import { startKafkaMockCluster, type KafkaMockCluster } from '../testing/kafka-mock.cluster.js';
import { BusError } from '../message-bus.port.js';
import { KafkaMessageBus, type KafkaBusOptions, toBusError } from './kafka.message-bus.js';
import { fastKafkaOptions } from '../testing/kafka-test.support.js';

let cluster: KafkaMockCluster | undefined;

beforeAll(async () => {
  cluster = await startKafkaMockCluster();
}, 15_000);

afterAll(async () => {
  await cluster?.stop();
});

const testOptions = (): KafkaBusOptions => fastKafkaOptions(cluster!.brokers, 'nexo-bus-contract');

describeMessageBusContract(
  'kafka (kafkajs on the librdkafka mock cluster)',
  async () => {
    const bus = new KafkaMessageBus(testOptions());
    return { bus, cleanup: () => bus.close() };
  },
  { waitMs: 20_000 },
);

describe('Kafka bus only', () => {
  it('says the bus is unavailable when no broker answers', async () => {
    const bus = new KafkaMessageBus({ brokers: ['127.0.0.1:1'], connectionTimeoutMs: 200, retry: { retries: 1, initialRetryTimeMs: 50 } });
    try {
      const publishing = bus.publish('nowhere', [{ key: 'k', value: 1 }]);
      await expect(publishing).rejects.toBeInstanceOf(BusError);
      await expect(publishing).rejects.toMatchObject({ code: 'unavailable', retriable: true, message: expect.stringMatching(/^kafka: connecting the producer failed: /) });
    } finally {
      await bus.close();
    }
  });

  it('translates a refusal by the broker into a non-retriable BusError naming the Kafka error', () => {
    const refusal = Object.assign(new Error('The request included a message larger than the max message size the server will accept'), {
      name: 'KafkaJSProtocolError',
      type: 'MESSAGE_TOO_LARGE',
      retriable: false,
    });
    const e = toBusError(Object.assign(new Error('gave up'), { name: 'KafkaJSNumberOfRetriesExceeded', cause: refusal }), 'publishing 1 message(s) to t');
    expect(e).toMatchObject({ code: 'rejected', retriable: false });
    expect(e.message).toBe('kafka: publishing 1 message(s) to t failed: MESSAGE_TOO_LARGE: The request included a message larger than the max message size the server will accept');
  });
});
