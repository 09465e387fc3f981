/**
 * The deposit consumer of one chain: feeds each scan step from
 * `nexo.chain.transfers` to a DepositWatch and appends what it decides to the
 * account streams. Credits go in once the transfer has the chain's
 * confirmations (the scanner reads no block with fewer); each credit stays
 * watched until its block is final, and one whose block leaves the canonical
 * chain without the transfer being found elsewhere is reversed (I4: credited
 * at most once, reversed at most once and only after being credited; the
 * account decider enforces both whatever the watch asks).
 *
 * At least once: the bus may deliver a message again. The watch is persisted
 * with the bus position after every message, and a message at or below that
 * position is skipped; a crash between an append and that save replays the
 * message, and the decider turns the repeated command into no event.
 */
import type Database from 'better-sqlite3';
import { TOPICS, type Consumer, type MessageBus } from '#bus';
import { type ChainConfig, type DepositWatch, type Transfer, creditDepositCommand, creditRefOf, reverseDepositCommand } from '#chain';
import { accountDecider, accountStream, depositKey } from '#domain';
import type { CommandRunner } from '#eventstore';
import type { Logger, NexoMetrics } from '#observability';
import { findAccountByDepositAddress } from '#projections';
import { type BusPosition, DepositWatchStore } from './deposit-watch.store.js';
import { EVM_FAMILY } from './chain-listener.js';
import { ChainStepMessage, transfersOf } from './transfers.message.js';

export interface DepositConsumerOptions {
  chain: ChainConfig;
  bus: MessageBus;
  runner: CommandRunner;
  /** The directory read model (deposit address → account) and the watch's table. */
  db: Database.Database;
  logger: Logger;
  clock?: () => Date;
  metrics?: Pick<NexoMetrics, 'depositsCredited' | 'depositsReversed' | 'depositsUncredited'>;
  /** Waits for the read models to catch up, for an address assigned a moment ago; the embedded default passes the projector's. */
  caughtUp?: () => Promise<void>;
  /** Consumer group; one per chain, so each chain's watch has a single owner. */
  group?: string;
}

export const depositGroupOf = (chain: Pick<ChainConfig, 'slug'>): string => `nexo-deposits-${chain.slug}`;

export interface DepositConsumer extends Consumer {
  /** Credited transfers still watched, for tests and diagnostics. */
  watched(): number;
}

export async function startDepositConsumer(o: DepositConsumerOptions): Promise<DepositConsumer> {
  const { chain } = o;
  const clock = o.clock ?? (() => new Date());
  const log = o.logger.child({ chain: chain.slug, chainId: chain.chainId });
  const store = new DepositWatchStore(o.db);
  const loaded = store.load(chain.chainId, { confirmations: chain.confirmations });
  const watch: DepositWatch = loaded.watch;
  let position: BusPosition | undefined = loaded.position;
  const tokens = new Map(chain.tokens.map((t) => [t.contract, t]));
  /** Identities already reported as blocked or relocated, so a watched entry is reported once, not per step. */
  const reported = new Set<string>();

  async function accountOf(address: string): Promise<string> {
    let found = findAccountByDepositAddress(o.db, EVM_FAMILY, address);
    if (!found && o.caughtUp) {
      await o.caughtUp();
      found = findAccountByDepositAddress(o.db, EVM_FAMILY, address);
    }
    // Retried by the bus: the directory may trail the listener's (a distributed instance catching up).
    if (!found) throw new Error(`deposit address ${address} belongs to no account in the directory`);
    return found.accountId;
  }

  async function credit(identity: string, t: Transfer): Promise<void> {
    const token = tokens.get(t.token);
    if (!token) throw new Error(`transfer of ${t.token}, a token not configured on ${chain.slug}`);
    const accountId = await accountOf(t.to);
    const cmd = creditDepositCommand(t, token.decimals, clock().toISOString());
    const result = await o.runner.handle(accountStream(accountId), accountDecider, cmd);
    watch.credited(identity, creditRefOf(t));
    if (result.events.length > 0) {
      o.metrics?.depositsCredited.inc({ chain: chain.slug, token: token.symbol });
      log.info(
        { accountId, txHash: t.txHash, logIndex: t.logIndex, block: t.blockNumber, token: token.symbol, amount: cmd.amount, truncatedUnits: cmd.truncatedUnits },
        'deposit credited',
      );
      return;
    }
    // No event: the ledger holds the key already. Credited and reversed before means I4 refuses it for good.
    if (result.state.deposits.get(depositKey(t.chainId, t.txHash, t.logIndex))?.reversed) {
      watch.reversed(identity, creditRefOf(t));
      if (reported.has(identity)) return;
      reported.add(identity);
      o.metrics?.depositsUncredited.inc({ chain: chain.slug });
      log.warn({ accountId, txHash: t.txHash, logIndex: t.logIndex, block: t.blockNumber }, 'transfer mined again under a ledger key credited and reversed before: not credited (I4); needs an operator');
    }
  }

  async function apply(m: ChainStepMessage): Promise<void> {
    watch.observe({ transfers: transfersOf(m), reorgedBlocks: m.reorgedBlocks });
    // A step split into parts is assessed whole: a relocated transfer may be in a later part than the reorg.
    if (m.part < m.parts) return;
    const view = { head: m.head, finalizedHead: m.finalizedHead, scannedTo: m.scannedTo, canonical: new Map(m.canonical.map((b) => [b.number, b.hash])) };
    const d = watch.assess(view);
    for (const c of d.credit) await credit(c.identity, c.transfer);
    for (const r of d.reverse) {
      const to = watch.entry(r.identity)?.sightings[0]?.to;
      if (to === undefined) throw new Error(`watched deposit ${r.identity} has no sighting`);
      const accountId = await accountOf(to);
      const result = await o.runner.handle(accountStream(accountId), accountDecider, reverseDepositCommand(r.credit, r.reason, clock().toISOString()));
      watch.reversed(r.identity, r.credit);
      if (result.events.length > 0) {
        o.metrics?.depositsReversed.inc({ chain: chain.slug });
        log.warn({ accountId, txHash: r.credit.txHash, logIndex: r.credit.logIndex, block: r.credit.blockNumber, reason: r.reason }, 'deposit reversed');
      }
    }
    for (const b of d.blocked) {
      if (reported.has(b.identity)) continue;
      reported.add(b.identity);
      o.metrics?.depositsUncredited.inc({ chain: chain.slug });
      log.warn({ txHash: b.transfer.txHash, logIndex: b.transfer.logIndex, block: b.transfer.blockNumber, reason: b.reason }, 'deposit not credited: needs an operator');
    }
    for (const r of d.relocated) {
      if (reported.has(r.identity)) continue;
      reported.add(r.identity);
      log.info({ txHash: r.credit.txHash, creditedBlock: r.credit.blockNumber, nowBlock: r.now.blockNumber }, 'credited transfer mined again in another block: credit kept');
    }
    watch.forget(d.final);
    for (const id of d.final) reported.delete(id);
  }

  const consumer = await o.bus.consume<unknown>(o.group ?? depositGroupOf(chain), TOPICS.chainTransfers, async (batch) => {
    for (const msg of batch) {
      const offset = BigInt(msg.offset);
      if (position && position.partition === msg.partition && offset <= position.offset) continue;
      const m = ChainStepMessage.parse(msg.value);
      if (m.chainId !== chain.chainId) continue;
      await apply(m);
      position = { partition: msg.partition, offset };
      store.save(chain.chainId, watch, position, clock());
    }
  });
  return Object.assign(consumer, { watched: () => watch.size });
}
