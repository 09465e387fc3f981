export * from './event-store.port.js';
export * from './command-runner.js';
export * from './adapters/sqlite.event-store.js';
export * from './adapters/sqlite.durability.js';
export * from './open-event-store.js';
export * from './thread-script.js';
// Types only: a value export would load the gRPC client with every import of this lib.
export type { EsdbEventStore, EsdbEventStoreOptions } from './adapters/esdb.event-store.js';
export * from './snapshot-store.port.js';
export * from './adapters/sqlite.snapshot-store.js';
