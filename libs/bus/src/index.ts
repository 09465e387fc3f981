export * from './message-bus.port.js';
export * from './adapters/in-process.message-bus.js';
export * from './adapters/direct.message-bus.js';
export * from './relay.js';
export * from './relay-lease.js';
export * from './key-order.js';
export * from './open-message-bus.js';
// Types only: a value export would load kafkajs with every import of this lib.
export type { KafkaMessageBus, KafkaBusOptions, BusLogger } from './adapters/kafka.message-bus.js';
