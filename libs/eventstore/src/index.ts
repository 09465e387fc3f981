export * from './event-store.port.js';
export * from './command-runner.js';
export * from './adapters/sqlite.event-store.js';
