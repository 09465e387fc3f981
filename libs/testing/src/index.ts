export * from './eventually.js';
export * from './sqlite.js';
export * from './ports.js';
