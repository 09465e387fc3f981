/**
 * Chooses the EventStore adapter from configuration. The EventStoreDB adapter
 * is imported only when asked for: the embedded default then never loads the
 * gRPC client (its startup time, its sockets, its native-free but heavy tree).
 */
import type { EventStore } from './event-store.port.js';
import { SqliteEventStore, type SqliteEventStoreOptions } from './adapters/sqlite.event-store.js';
import type { EsdbEventStoreOptions } from './adapters/esdb.event-store.js';

export type EventStoreConfig =
  | ({ kind: 'sqlite'; file: string } & SqliteEventStoreOptions)
  | ({ kind: 'esdb'; url: string } & EsdbEventStoreOptions);

export async function openEventStore(config: EventStoreConfig): Promise<EventStore> {
  switch (config.kind) {
    case 'sqlite': {
      const { kind: _kind, file, ...options } = config;
      return SqliteEventStore.open(file, options);
    }
    case 'esdb': {
      const { kind: _kind, url, ...options } = config;
      const { EsdbEventStore } = await import('./adapters/esdb.event-store.js');
      return EsdbEventStore.connect(url, options);
    }
  }
}
