/**
 * Counts the SQLite statements each thread of the service runs, by SQL text, and prints them to
 * stderr when the thread exits: work a change can be judged by when CPU time drifts more than the
 * change is worth (this VM has no hardware counters). A preload for the service's node:
 *
 *   npm run -s build && BENCH_ONLY=full BENCH_NODE_FLAGS="--import ./bench/count-statements.mjs" \
 *     node dist/bench/pipeline.bench.js 2>&1 | grep -A25 '^statements'
 *
 * Divide by the run's OTPs (the warm-up's 1,500 included) for statements per OTP. It wraps the
 * statement methods of better-sqlite3, so it costs a little CPU itself: not for timing runs.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { threadId } from 'node:worker_threads';

const require = createRequire(`${process.cwd()}/package.json`);
const Database = require('better-sqlite3');
const counts = new Map();
const count = (sql) => {
  const key = sql.replace(/\s+/g, ' ').trim().slice(0, 120);
  counts.set(key, (counts.get(key) ?? 0) + 1);
};

const probe = new Database(':memory:');
const Statement = Object.getPrototypeOf(probe.prepare('SELECT 1'));
probe.close();
for (const method of ['run', 'get', 'all', 'iterate']) {
  const original = Statement[method];
  Statement[method] = function counted(...args) {
    count(this.source);
    return original.apply(this, args);
  };
}
const exec = Database.prototype.exec;
Database.prototype.exec = function counted(sql) {
  count(`exec: ${sql}`);
  return exec.call(this, sql);
};

process.on('exit', () => {
  let name = `thread ${threadId}`;
  try {
    name = `${readFileSync('/proc/thread-self/comm', 'utf8').trim()} (thread ${threadId})`;
  } catch {
    // Not Linux: the thread id alone.
  }
  const rows = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 25);
  process.stderr.write(`statements of ${name}\n${rows.map(([sql, n]) => `${String(n).padStart(9)}  ${sql}`).join('\n')}\n`);
});
