export * from './cipher.port.js';
export * from './adapters/aes-gcm.cipher.js';
export * from './secrets.js';
export * from './public-address.js';
