// Child process for the SIGKILL test: runs the live projector on an existing log and reports each committed page.
import { SqliteEventStore } from '../../../dist/libs/eventstore/src/index.js';
import { Projector, defaultProjections } from '../../../dist/libs/projections/src/index.js';

const [file, batchArg] = process.argv.slice(2);
const store = SqliteEventStore.open(file);
const projector = new Projector({
  store,
  db: store.db,
  projections: defaultProjections(),
  batchSize: Number(batchArg),
  catchUpBatchSize: Number(batchArg),
  onPage: (p) => process.stdout.write(`page ${p.position}\n`),
  onError: (e) => process.stderr.write(`${e?.stack ?? e}\n`),
});
process.stdout.write(`start ${projector.position()}\n`);
projector.start();
