export * from './logger.js';
export * from './metrics.js';
export * from './process-lifecycle.js';
export * from './probe-server.js';
