export * from './worker.deps.js';
export * from './workers.js';
export * from './lookups.js';
export * from './messages.js';
export * from './webhooks/signature.js';
export * from './worker.metrics.js';
export * from './worker.config.js';
export * from './dispatcher.consumer.js';
