export * from './eventually.js';
export * from './sqlite.js';
