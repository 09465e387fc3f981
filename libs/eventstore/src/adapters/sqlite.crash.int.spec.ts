import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SqliteEventStore } from './sqlite.event-store.js';
import { ensureBuilt, repoRoot } from '../testing/ensure-built.js';

const TOTAL = 20_000;

describe('SQLite store killed mid-append (SIGKILL of a real child process)', () => {
  beforeAll(() => ensureBuilt(), 120_000);

  it('keeps every acknowledged append, in order, with contiguous revisions and positions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexo-crash-'));
    const file = join(dir, 'events.db');
    const child = spawn(process.execPath, [join(repoRoot, 'libs/eventstore/test-fixtures/append-child.mjs'), file, String(TOTAL)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const acked: { stream: string; revision: bigint; position: bigint; seq: number }[] = [];
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    for await (const line of createInterface({ input: child.stdout })) {
      if (line === 'done') break;
      const [stream, revision, position, seq] = line.split(' ');
      acked.push({ stream, revision: BigInt(revision), position: BigInt(position), seq: Number(seq) });
      if (acked.length === TOTAL / 4) child.kill('SIGKILL');
    }
    expect(await exited).toBe('SIGKILL');
    expect(acked.length).toBeGreaterThanOrEqual(TOTAL / 4);
    expect(acked.length).toBeLessThan(TOTAL);

    const store = SqliteEventStore.open(file);
    try {
      const byPosition = new Map<bigint, { streamId: string; revision: bigint; seq: number }>();
      let expectedPosition = 1n;
      const lastRevision = new Map<string, bigint>();
      const lastSeq = new Map<string, number>();
      for await (const e of store.readAll()) {
        expect(e.position).toBe(expectedPosition++);
        const prev = lastRevision.get(e.streamId) ?? -1n;
        expect(e.revision).toBe(prev + 1n);
        lastRevision.set(e.streamId, e.revision);
        const seq = (e.data as { seq: number }).seq;
        // Within a stream, later appends carry later sequence numbers: order survived.
        expect(seq).toBeGreaterThan(lastSeq.get(e.streamId) ?? -1);
        lastSeq.set(e.streamId, seq);
        byPosition.set(e.position, { streamId: e.streamId, revision: e.revision, seq });
      }
      for (const a of acked) {
        const stored = byPosition.get(a.position);
        expect(stored).toEqual({ streamId: a.stream, revision: a.revision, seq: a.seq });
      }
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
