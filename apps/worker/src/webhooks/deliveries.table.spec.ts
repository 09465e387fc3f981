import Database from 'better-sqlite3';
import { newId } from '#security';
import { openDeliveries, otpIdsBefore, SCAN_ROWS } from './deliveries.table.js';

const DAY = 24 * 3600 * 1000;
const NOW = Date.parse('2026-11-26T08:00:00Z');

describe('webhook deliveries table', () => {
  let db: Database.Database;
  beforeEach(() => {
    db = new Database(':memory:');
  });
  afterEach(() => db.close());

  const rows = () => db.prepare<[], { otp_id: string; event_id: string; status: string }>('SELECT otp_id, event_id, status FROM webhook_deliveries ORDER BY otp_id').all();

  it('orders OTP ids by creation time, so the retention bound is a key range', () => {
    const old = newId('otp', NOW - 8 * DAY);
    const fresh = newId('otp', NOW - DAY);
    const bound = otpIdsBefore(NOW - 7 * DAY);
    expect(old < bound).toBe(true);
    expect(fresh < bound).toBe(false);
    expect(newId('otp', NOW - 7 * DAY) < bound).toBe(false);
  });

  it('keeps one row per event (a repeat is ignored) and finds due rows', () => {
    const t = openDeliveries(db);
    const otp = newId('otp', NOW);
    expect(t.insert.run(otp, 'e1', 'acc', 'otp.routed', 'http://127.0.0.1/h', '{}', NOW, NOW).changes).toBe(1);
    expect(t.insert.run(otp, 'e1', 'acc', 'otp.routed', 'http://127.0.0.1/h', '{}', NOW, NOW).changes).toBe(0);
    expect(t.dueAfter(NOW).map((r) => r.event_id)).toEqual(['e1']);
    t.done.run(204, NOW, otp, 'e1');
    expect(t.dueAfter(NOW)).toEqual([]);
    expect(t.backlog.get()).toEqual({ n: 0 });
  });

  it('pages through due rows in (next_ms, otp_id, event_id) order from a cursor, using the partial index', () => {
    const t = openDeliveries(db);
    const otps = Array.from({ length: SCAN_ROWS + 5 }, (_, i) => newId('otp', NOW + i));
    // Every row due at the same moment but the last five, due later: order falls to the key.
    otps.forEach((otp, i) => t.insert.run(otp, 'e', 'acc', 'otp.routed', 'http://127.0.0.1/h', '{}', i < SCAN_ROWS ? NOW : NOW + 1 + i, NOW));
    const first = t.dueAfter(NOW + 10 * SCAN_ROWS);
    expect(first.map((r) => r.otp_id)).toEqual(otps.slice(0, SCAN_ROWS));
    const second = t.dueAfter(NOW + 10 * SCAN_ROWS, first[first.length - 1]);
    expect(second.map((r) => r.otp_id)).toEqual(otps.slice(SCAN_ROWS));
    expect(t.dueAfter(NOW)).toHaveLength(SCAN_ROWS);
    const plan = db.prepare("EXPLAIN QUERY PLAN SELECT otp_id FROM webhook_deliveries WHERE status = 'pending' AND next_ms <= 1 AND (next_ms, otp_id, event_id) > (0, '', '') ORDER BY next_ms, otp_id, event_id LIMIT 10").all() as { detail: string }[];
    expect(plan.map((p) => p.detail).join('; ')).toMatch(/USING (COVERING )?INDEX webhook_deliveries_due/);
    expect(plan.map((p) => p.detail).join('; ')).not.toMatch(/TEMP B-TREE/);
  });

  it('prunes final rows of OTPs past retention, a batch at a time, and keeps pending ones and newer OTPs', () => {
    const t = openDeliveries(db);
    const old = Array.from({ length: 1_500 }, (_, i) => newId('otp', NOW - 10 * DAY + i));
    for (const otp of old) t.insert.run(otp, `${otp}-e`, 'acc', 'otp.delivered', 'http://127.0.0.1/h', '{}', NOW, NOW);
    for (const otp of old.slice(1)) t.done.run(204, NOW, otp, `${otp}-e`);
    const fresh = newId('otp', NOW);
    t.insert.run(fresh, 'fresh-e', 'acc', 'otp.delivered', 'http://127.0.0.1/h', '{}', NOW, NOW);
    t.done.run(204, NOW, fresh, 'fresh-e');
    t.putTarget.run(old[0], 'http://127.0.0.1/override');
    t.putTarget.run(fresh, 'http://127.0.0.1/override');

    expect(t.prune(NOW - 7 * DAY)).toBe(1_000);
    expect(t.prune(NOW - 7 * DAY)).toBe(499);
    expect(t.prune(NOW - 7 * DAY)).toBe(0);
    // Left: the old row still pending (it is never deleted before it is final) and the fresh one.
    expect(rows()).toEqual([
      { otp_id: old[0], event_id: `${old[0]}-e`, status: 'pending' },
      { otp_id: fresh, event_id: 'fresh-e', status: 'delivered' },
    ]);
    expect(t.target.get(old[0])).toBeUndefined();
    expect(t.target.get(fresh)).toEqual({ url: 'http://127.0.0.1/override' });
  });

  it('moves the rows of a file keyed by event id into the clustered table, once', () => {
    db.exec(`
      CREATE TABLE webhook_deliveries (
        event_id TEXT PRIMARY KEY, otp_id TEXT NOT NULL, account_id TEXT NOT NULL, type TEXT NOT NULL, url TEXT NOT NULL,
        body TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, next_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL,
        last_code INTEGER, last_error TEXT, delivered_ms INTEGER);
      CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_ms) WHERE status = 'pending';
      CREATE INDEX webhook_deliveries_otp ON webhook_deliveries (otp_id);`);
    const a = newId('otp', NOW - 1_000);
    const b = newId('otp', NOW);
    const put = db.prepare(`INSERT INTO webhook_deliveries VALUES (?, ?, 'acc', 'otp.routed', 'http://127.0.0.1/h', '{"x":1}', ?, ?, ?, ?, ?, ?, ?)`);
    put.run('e-a', a, 'delivered', 1, NOW, NOW, 204, null, NOW);
    put.run('e-b', b, 'pending', 2, NOW + 5_000, NOW, 500, 'http 500', null);

    const t = openDeliveries(db);
    expect(t.migrated).toBe(true);
    expect(rows()).toEqual([
      { otp_id: a, event_id: 'e-a', status: 'delivered' },
      { otp_id: b, event_id: 'e-b', status: 'pending' },
    ]);
    expect(t.dueAfter(NOW + 5_000)).toEqual([{ otp_id: b, event_id: 'e-b', url: 'http://127.0.0.1/h', account_id: 'acc', body: '{"x":1}', attempts: 2, created_ms: NOW, next_ms: NOW + 5_000 }]);
    const names = db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE name LIKE 'webhook_deliveries%' ORDER BY name").all().map((r) => r.name);
    expect(names).toEqual(['webhook_deliveries', 'webhook_deliveries_due']);
    expect(openDeliveries(db).migrated).toBe(false);
  });
});
