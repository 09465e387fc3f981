/**
 * Chooses the MessageBus adapter from configuration. The Kafka adapter is
 * imported only when asked for, so the embedded default never loads kafkajs.
 */
import type Database from 'better-sqlite3';
import type { MessageBus } from './message-bus.port.js';
import { InProcessMessageBus, type InProcessBusOptions } from './adapters/in-process.message-bus.js';
import type { KafkaBusOptions } from './adapters/kafka.message-bus.js';

export type MessageBusConfig =
  | ({ kind: 'in-process'; db: Database.Database } & InProcessBusOptions)
  | ({ kind: 'kafka' } & KafkaBusOptions);

export async function openMessageBus(config: MessageBusConfig): Promise<MessageBus> {
  switch (config.kind) {
    case 'in-process': {
      const { kind: _kind, db, ...options } = config;
      return new InProcessMessageBus(db, options);
    }
    case 'kafka': {
      const { kind: _kind, ...options } = config;
      const { KafkaMessageBus } = await import('./adapters/kafka.message-bus.js');
      return new KafkaMessageBus(options);
    }
  }
}
