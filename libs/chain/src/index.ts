export * from './chain-client.port.js';
export * from './chain.config.js';
export * from './deposit-address.js';
export * from './log-scanner.js';
export * from './deposit-watch.js';
export * from './deposit.commands.js';
export * from './retry.backoff.js';
export { EthersChainClient, ethersChainClientFor, TRANSFER_TOPIC, type EthersChainClientOptions } from './adapters/ethers.chain-client.js';
export { InMemoryChain, type InMemoryChainOptions, type MemoryTransfer } from './adapters/memory.chain-client.js';
