export * from './worker.deps.js';
export * from './workers.js';
export * from './lookups.js';
export * from './messages.js';
export * from './webhooks/signature.js';
