import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { SqliteEventStore } from '#eventstore';
import { readCheckpoints } from './checkpoints.js';
import { Projector } from './projector.js';
import { defaultProjections } from './read-models/all.js';
import { dumpTables } from './testing/dump.js';
import { ensureBuilt, repoRoot } from './testing/ensure-built.js';
import { acct, credited, delivered, isoAt, opened, otpStream, receipt, refunded, routed, sent, tempStore, type TempStore } from './testing/events.js';

const OTPS = 4_000;
const T = '2026-05-31T22:00:00.000Z';

function dumpAll(db: Database.Database): Record<string, unknown> {
  return Object.fromEntries(defaultProjections().map((p) => [p.name, dumpTables(db, p)]));
}

/** Runs the child until it has committed pages past `killAfter`, then SIGKILLs it; returns the last position it reported. */
async function runAndKill(file: string, killAfter: bigint): Promise<{ signal: NodeJS.Signals | null; reported: bigint }> {
  const child = spawn(process.execPath, [join(repoRoot, 'libs/projections/test-fixtures/project-child.mjs'), file, '97'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  let reported = 0n;
  for await (const line of createInterface({ input: child.stdout })) {
    const [kind, value] = line.split(' ');
    if (kind !== 'page') continue;
    reported = BigInt(value);
    if (reported >= killAfter) {
      child.kill('SIGKILL');
      break;
    }
  }
  return { signal: await exited, reported };
}

describe('projector killed mid-projection (SIGKILL of a real child process)', () => {
  let t: TempStore;
  beforeAll(async () => {
    ensureBuilt(['libs/projections/src']);
    t = tempStore('nexo-crash-proj-');
    const accounts = ['A', 'B', 'C', 'D'];
    for (const id of accounts) await t.put(acct(id), opened(id, 3), credited(id.charCodeAt(0), 1_000_000_000n, T));
    const writes: Promise<void>[] = [];
    for (let i = 0; i < OTPS; i++) {
      const a = acct(accounts[i % 4]);
      const id = `o${i}`;
      writes.push(t.put(a, sent(id, isoAt(T, i), { carrier: i % 3 ? 'viettel' : 'mobifone', fundedBy: i < 8 ? 'test_credit' : 'balance' })));
      writes.push(t.put(otpStream(id), routed(id, isoAt(T, i + 1)), receipt(id, isoAt(T, i + 4))));
      writes.push(t.put(a, i % 9 === 0 ? refunded(id, isoAt(T, i + 600), { fundedBy: i < 8 ? 'test_credit' : 'balance' }) : delivered(id, isoAt(T, i + 4 + (i % 13)))));
    }
    await Promise.all(writes);
    await t.store.close();
  }, 120_000);
  afterAll(() => t.dispose());

  it('keeps every read model exactly at its checkpoint, then finishes with nothing lost or counted twice', async () => {
    const probe = SqliteEventStore.open(t.file, { readonly: true });
    const head = await probe.headPosition();
    await probe.close();
    let last = 0n;
    // Three crashes at a quarter, half and three quarters of the log, each run resuming from the last.
    for (const killAfter of [head / 4n, head / 2n, (head * 3n) / 4n]) {
      const { signal, reported } = await runAndKill(t.file, killAfter > last ? killAfter : last + 1n);
      expect(signal).toBe('SIGKILL');
      // What survived the kill: one checkpoint for all three projections (one transaction per page), somewhere mid-log.
      const db = new Database(t.file, { readonly: true });
      const checkpoints = readCheckpoints(db);
      expect(checkpoints.map((c) => c.name).sort()).toEqual(defaultProjections().map((p) => p.name).sort());
      const at = checkpoints[0].position;
      for (const c of checkpoints) expect(c.position).toBe(at);
      expect(at).toBeGreaterThanOrEqual(reported);
      expect(at).toBeGreaterThan(last);
      expect(at).toBeLessThan(head);
      // The tables hold exactly the events up to the checkpoint: none half-applied, none beyond it.
      const store = SqliteEventStore.open(t.file, { readonly: true });
      const upTo = new Database(':memory:');
      await new Projector({ store, db: upTo, projections: defaultProjections() }).catchUp(at);
      expect(dumpAll(db)).toEqual(dumpAll(upTo));
      await store.close();
      db.close();
      last = at;
    }

    // Restart: the projector resumes from its checkpoint and reaches the head.
    const store = SqliteEventStore.open(t.file);
    try {
      const restarted = new Projector({ store, db: store.db, projections: defaultProjections() });
      expect(restarted.position()).toBe(last);
      await restarted.catchUp();
      expect(restarted.position()).toBe(head);
      const fresh = new Database(':memory:');
      await new Projector({ store, db: fresh, projections: defaultProjections() }).catchUp();
      expect(dumpAll(store.db)).toEqual(dumpAll(fresh));
    } finally {
      await store.close();
    }
  }, 120_000);
});
