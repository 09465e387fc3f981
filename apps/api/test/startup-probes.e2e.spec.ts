/**
 * A real `node dist/apps/api/src/main.js` whose read models take a while to
 * catch up (a new replica in the distributed mode replays the whole log; here
 * the EventStoreDB stand-in answers each page of it a second late). Meanwhile
 * its port answers the probes: alive, not ready, and a /metrics scrape that
 * succeeds, so neither an orchestrator nor Prometheus takes it for dead, and
 * any other path 503 with Retry-After. Then the API itself takes the port.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEventStore } from '#eventstore';
import { until } from '#testing';
import { ensureBuilt } from '../../../libs/eventstore/src/testing/ensure-built.js';
import { FakeEventStoreDb } from '../../../libs/eventstore/test/fake-eventstoredb.server.js';
import { freePort, ready, startApiProcess, stopApiProcess } from './api-process.js';
import { ReadyStartingResponse } from '../src/http/responses.js';

/**
 * An API process on the EventStoreDB stand-in whose log has something to replay (an empty log is
 * caught up at once), each page of it answered 1.5 s late until `restore()`.
 */
async function slowStartingApi(env: Record<string, string> = {}, options: { stdout?: 'pipe' } = {}) {
  const esdb = await FakeEventStoreDb.start();
  const log = await openEventStore({ kind: 'esdb', url: esdb.url });
  await log.append('account-acc_starting', [{ type: 'AccountOpened', data: { accountId: 'acc_starting', name: 'x', testCredits: 5, at: new Date().toISOString() } }], 'no_stream');
  await log.close();
  const restore = esdb.slowForwardLogReads(1_500);
  const dir = mkdtempSync(join(tmpdir(), 'nexo-starting-'));
  const port = await freePort();
  const child = startApiProcess(
    dir,
    port,
    { ESDB_URL: esdb.url, NEXO_WORKERS: 'off', NEXO_CIPHER_KEYS: `k1:${randomBytes(32).toString('hex')}`, NEXO_PHONE_PEPPER: randomBytes(32).toString('hex'), ...env },
    options,
  );
  const live = () =>
    until('/health/live answering while starting', () => fetch(`http://127.0.0.1:${port}/health/live`).then((r) => (r.ok ? r : undefined), () => undefined), {
      timeoutMs: 20_000,
      everyMs: 50,
    });
  const cleanUp = async () => {
    restore();
    await stopApiProcess(child);
    await esdb.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return { child, base: `http://127.0.0.1:${port}`, live, restore, cleanUp };
}

describe('the API process while its read models catch up', () => {
  beforeAll(() => ensureBuilt(), 180_000);

  it('answers live, not ready, and a /metrics that says it is starting; then serves', async () => {
    const { base, live, restore, cleanUp } = await slowStartingApi();
    try {
      expect((await live()).status).toBe(200);
      const notReady = await fetch(`${base}/health/ready`);
      expect(notReady.status).toBe(503);
      const body: unknown = await notReady.json();
      expect(body).toEqual({ ok: false, starting: true });
      // The schema /openapi.json gives for that answer.
      expect(ReadyStartingResponse.safeParse(body).success).toBe(true);
      const scrape = await fetch(`${base}/metrics`);
      expect(scrape.status).toBe(200);
      expect(await scrape.text()).toMatch(/^nexo_process_starting 1$/m);
      // The API's own paths meanwhile: retry, in the API's error shape, not a 404 that reads as final.
      const early = await fetch(`${base}/api/v1/send-otp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(early.status).toBe(503);
      expect(early.headers.get('retry-after')).toBe('1');
      expect(await early.json()).toMatchObject({ ok: false, error: 'internal' });

      restore();
      await ready(base);
      expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/^# TYPE nexo_otp_requested_total counter$/m);
    } finally {
      await cleanUp();
    }
  }, 60_000);

  it('asked to stop (SIGTERM) while starting, stops cleanly once started instead of dying with its log unwritten', async () => {
    const { child, live, restore, cleanUp } = await slowStartingApi({ LOG_LEVEL: 'info' }, { stdout: 'pipe' });
    const messages: string[] = [];
    let partial = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop()!;
      for (const line of lines) messages.push((JSON.parse(line) as { msg: string }).msg);
    });
    // 'close', not 'exit': its last log lines may still be in the pipe when it exits.
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
    try {
      await live();
      child.kill('SIGTERM');
      await until('the stop asked while starting logged', () => messages.some((m) => m.startsWith('asked to stop while starting')) || undefined, { timeoutMs: 5_000, everyMs: 50 });
      expect(child.exitCode).toBeNull();
      restore();
      expect(await exited).toEqual({ code: 0, signal: null });
      expect(messages.filter((m) => /^(asked to stop|NEXO ROUTE api running|shutting down|stopped cleanly)/.test(m))).toEqual([
        expect.stringMatching(/^asked to stop while starting/),
        'NEXO ROUTE api running',
        expect.stringMatching(/^shutting down/),
        'stopped cleanly',
      ]);
    } finally {
      await cleanUp();
    }
  }, 60_000);
});
