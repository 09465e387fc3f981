/**
 * The deposit consumer's memory per chain, persisted after every message it
 * applies: the DepositWatch (sightings, credits, orphaned blocks, reversed
 * keys) and the bus position it reflects. Persisting it is what lets a
 * restarted consumer still reverse a credit whose block a reorg removes
 * later; rebuilding it instead would mean reading the chain again from the
 * oldest unfinalized credit, and a transfer relocated by a reorg before the
 * restart would be lost from view. The file must therefore outlive the
 * process (the embedded default's data dir; a volume for a distributed
 * chain-listener, which keeps its cursor there too).
 */
import type Database from 'better-sqlite3';
import { type DepositPolicy, DepositWatch } from '#chain';

export interface BusPosition {
  partition: number;
  offset: bigint;
}

export class DepositWatchStore {
  readonly #get: Database.Statement<[number], { snapshot: string; bus_partition: number | null; bus_offset: string | null }>;
  readonly #put: Database.Statement<[number, string, number, string, string]>;

  constructor(db: Database.Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS deposit_watches (
      chain_id      INTEGER PRIMARY KEY,
      snapshot      TEXT    NOT NULL,
      bus_partition INTEGER,
      bus_offset    TEXT,
      updated_at    TEXT    NOT NULL
    )`);
    this.#get = db.prepare('SELECT snapshot, bus_partition, bus_offset FROM deposit_watches WHERE chain_id = ?');
    this.#put = db.prepare(
      `INSERT INTO deposit_watches (chain_id, snapshot, bus_partition, bus_offset, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (chain_id) DO UPDATE SET snapshot = excluded.snapshot, bus_partition = excluded.bus_partition,
         bus_offset = excluded.bus_offset, updated_at = excluded.updated_at`,
    );
  }

  load(chainId: number, policy: DepositPolicy): { watch: DepositWatch; position: BusPosition | undefined } {
    const row = this.#get.get(chainId);
    if (!row) return { watch: new DepositWatch(policy), position: undefined };
    const position = row.bus_partition === null || row.bus_offset === null ? undefined : { partition: row.bus_partition, offset: BigInt(row.bus_offset) };
    return { watch: DepositWatch.restore(policy, JSON.parse(row.snapshot)), position };
  }

  save(chainId: number, watch: DepositWatch, position: BusPosition, at: Date): void {
    this.#put.run(chainId, JSON.stringify(watch.snapshot()), position.partition, position.offset.toString(), at.toISOString());
  }
}
