// Child process for the SIGKILL test: appends events and reports every acknowledged append on stdout.
import { SqliteEventStore } from '../../../dist/libs/eventstore/src/index.js';

const [file, totalArg] = process.argv.slice(2);
const total = Number(totalArg);
const STREAMS = 50;
const store = SqliteEventStore.open(file);
let next = 0;
const revisions = new Map();

async function appender(streamNo) {
  const stream = `crash-${streamNo}`;
  for (;;) {
    const seq = next++;
    if (seq >= total) return;
    const expected = revisions.has(stream) ? revisions.get(stream) : 'no_stream';
    const r = await store.append(stream, [{ type: 'Appended', data: { seq } }], expected);
    revisions.set(stream, r.nextExpectedRevision);
    process.stdout.write(`${stream} ${r.nextExpectedRevision} ${r.position} ${seq}\n`);
  }
}

await Promise.all(Array.from({ length: STREAMS }, (_, i) => appender(i)));
await store.close();
process.stdout.write('done\n');
