/** The deposit side of the service, for the API process (embedded default) and the chain-listener entry point. */
export * from './chains.config.js';
export * from './chain-listener.js';
export * from './chain-services.js';
export * from './deposit.consumer.js';
export * from './deposit-addresses.js';
export * from './deposit-watch.store.js';
export * from './scan-cursor.store.js';
export * from './transfers.message.js';
