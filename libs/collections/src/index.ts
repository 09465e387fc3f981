export * from './oldest-first.js';
export * from './expiry-queue.js';
