/**
 * Rebuilds one projection beside the live one and swaps it in, without
 * stopping the service that keeps the live tables current.
 *
 * The new tables (suffixed) are filled page by page from position 0, each
 * page in its own short transaction so the service's appends and projector
 * keep going. The swap happens in the transaction that applies the first page
 * reaching the live checkpoint: under the write lock it drops the live tables,
 * renames the new ones into their place and sets the checkpoint to that
 * page's end. The live projector re-reads its checkpoint inside every
 * transaction and skips what is at or below it, so it continues on the new
 * tables from exactly there: nothing is applied twice or missed.
 */
import type { EventStore } from '#eventstore';
import { createCheckpointTable, readCheckpoint, writeCheckpoint } from './checkpoints.js';
import { pageReader } from './log-reader.js';
import { createTables, type Db, dropTables, type Projection } from './projection.js';

export interface RebuildOptions {
  store: EventStore;
  db: Db;
  projection: Projection;
  batchSize?: number;
  /** After each page: position reached and events read so far. */
  onProgress?: (progress: { position: bigint; events: number }) => void;
}

export interface RebuildResult {
  /** The checkpoint the rebuilt tables were swapped in at. */
  position: bigint;
  events: number;
  seconds: number;
}

export async function rebuildProjection(options: RebuildOptions): Promise<RebuildResult> {
  const { store, db, projection } = options;
  const batchSize = options.batchSize ?? 5_000;
  const read = pageReader(store);
  const started = performance.now();
  // Unique per rebuild: index names keep the builder's suffix after the swap, so reusing one could collide.
  const suffix = `__rb${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  db.transaction(() => {
    createCheckpointTable(db);
    createTables(db, projection, suffix);
  }).immediate();
  const writer = projection.writer(db, suffix);
  let position = 0n;
  let events = 0;
  try {
    for (;;) {
      const page = await read(position, batchSize);
      const swapped = db
        .transaction(() => {
          for (const e of page) if (projection.handles.includes(e.type)) writer.apply(e);
          writer.flush();
          const end = page.length > 0 ? page[page.length - 1].position : position;
          // Swap once level with the live checkpoint; with no live projection, once at the head.
          const live = readCheckpoint(db, projection.name);
          if (live === undefined ? page.length > 0 : end < live.position) return false;
          dropTables(db, projection);
          for (const t of projection.tables) db.exec(`ALTER TABLE "${t}${suffix}" RENAME TO "${t}"`);
          writeCheckpoint(db, projection.name, projection.version, end);
          return true;
        })
        .immediate();
      if (page.length > 0) position = page[page.length - 1].position;
      events += page.length;
      options.onProgress?.({ position, events });
      if (swapped) return { position, events, seconds: (performance.now() - started) / 1000 };
      if (page.length === 0) {
        // At the head yet behind the live checkpoint: the head moved on; read again shortly.
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } catch (error) {
    writer.discard();
    dropTables(db, projection, suffix);
    throw error;
  }
}
