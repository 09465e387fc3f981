/**
 * The SMPP adapter's link under failure, against a scripted smpp@0.5 server on
 * 127.0.0.1 (libs/carriers/test/scripted-smsc.ts) that refuses or ignores the
 * bind, never answers enquire_link, drops the socket with a window in flight,
 * or unbinds on its own. What is asserted: every submit settles exactly once,
 * nothing written is re-sent, nothing queued is lost, backoff stays within its
 * bounds (measured at the server), and no secret reaches a log or an error.
 * Timers are shortened through the adapter's options, never mocked.
 */
import smpp from 'smpp';
import { until } from '#testing';
import type { SmppLinkState } from './smpp.options.js';
import { recordingLogger, settle } from '../../test/scripted-smsc.js';
import { scriptedSmscPerTest, sms, smsText } from '../../test/smpp-gateway.fixtures.js';

const E = smpp.errors;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Equal jitter: attempt k waits between step/2 and step, step = min(max, base·2^k). */
function expectBackoff(delays: number[], baseMs: number, maxMs: number): void {
  delays.forEach((d, k) => {
    const step = Math.min(maxMs, baseMs * 2 ** k);
    expect(d).toBeGreaterThanOrEqual(step / 2);
    expect(d).toBeLessThanOrEqual(step);
  });
}

describe('smpp adapter: the link under failure (scripted SMSC)', () => {
  let states: { state: SmppLinkState; at: number; reconnectInMs?: number }[];
  const link = scriptedSmscPerTest(() => ({ onStateChange: (state, d) => states.push({ state, at: Date.now(), ...d }) }));
  const disconnects = () => states.filter((s) => s.state === 'disconnected');

  beforeEach(() => {
    states = [];
  });

  it('reports a refused bind by its ESME status and never puts the password in a log line, state or error', async () => {
    const PASSWORD = 'Zq7!vX3k'; // SMPP passwords are at most 8 characters
    link.smsc.password = 'other';
    link.smsc.refuseWith = E.ESME_RINVPASWD!;
    const { lines, logger } = recordingLogger();
    link.start({ password: PASSWORD, logger, reconnect: { baseMs: 30, maxMs: 240 }, queueTimeoutMs: 400 });
    const queued = settle(link.gw!.submit(sms(1)));
    const bound = settle(link.gw!.whenBound(250));
    await until('five bind attempts', () => link.smsc.bindAttempts.length >= 5, { timeoutMs: 5_000, everyMs: 5 });

    // The secret did go where it belongs: on the wire, in bind_transceiver.
    expect(link.smsc.bindAttempts[0]).toMatchObject({ systemId: 'nexo', password: PASSWORD });
    const refused = lines.filter((l) => l.msg === 'smpp bind refused');
    expect(refused.length).toBeGreaterThanOrEqual(4);
    for (const l of refused) expect(l).toMatchObject({ level: 'error', fields: { provider: 'smsc', status: 'ESME_RINVPASWD' } });
    expect(link.gw!.state).not.toBe('bound');

    const q = await queued;
    const b = await bound;
    // A refused bind fails what waits for it at once, as never sent (no ambiguity), so the dispatcher fails over
    // instead of holding every OTP for queueTimeoutMs; so does a submit made while the link stays refused.
    expect(q).toMatchObject({ ok: false, error: { code: 'unavailable', detail: 'bind:ESME_RINVPASWD', retryable: true, ambiguous: false } });
    const t0 = Date.now();
    expect(await settle(link.gw!.submit(sms(2)))).toMatchObject({ ok: false, error: { code: 'unavailable', detail: 'bind:ESME_RINVPASWD' } });
    expect(Date.now() - t0).toBeLessThan(100);
    expect(b).toMatchObject({ ok: false, error: { code: 'timeout' } });
    expect(link.smsc.submits).toHaveLength(0);

    const errors = [q, b].map((r) => (r.ok ? '' : `${r.error.message} ${JSON.stringify(r.error)} ${(r.error as Error).stack ?? ''}`));
    const everything = JSON.stringify({ lines, states, errors });
    expect(everything).not.toContain(PASSWORD);
  });

  it('waits its backoff between refused binds: delays grow within equal-jitter bounds, and the SMSC sees no reconnect earlier', async () => {
    link.smsc.bind = () => E.ESME_RBINDFAIL!;
    link.start({ reconnect: { baseMs: 30, maxMs: 240 } });
    await until('six connections', () => link.smsc.connections.length >= 6, { timeoutMs: 5_000, everyMs: 5 });
    const delays = disconnects().map((s) => s.reconnectInMs!);
    expectBackoff(delays.slice(0, 5), 30, 240);
    for (let k = 0; k < 5; k++) {
      // From the moment the adapter saw the link down to the SMSC accepting the next connection.
      const gap = link.smsc.connections[k + 1]!.at - disconnects()[k]!.at;
      // Node times from its cached loop clock, which may lag Date.now() by the work done earlier in the tick.
      expect(gap).toBeGreaterThanOrEqual(delays[k]! - 10);
      expect(gap).toBeLessThanOrEqual(delays[k]! + 250);
    }
  });

  it('starts the backoff over after a bind that held reconnect.stableMs', async () => {
    link.smsc.bind = (attempt) => (attempt < 3 ? E.ESME_RBINDFAIL! : 'accept');
    link.start({ reconnect: { baseMs: 40, maxMs: 1_000, stableMs: 50 } });
    await link.gw!.whenBound(3_000);
    expectBackoff(disconnects().map((s) => s.reconnectInMs!), 40, 1_000);
    expect(disconnects()).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 100));
    link.smsc.dropAll();
    await until('the drop seen', () => disconnects().length === 4, { timeoutMs: 5_000, everyMs: 5 });
    const after = disconnects()[3]!.reconnectInMs!;
    expect(after).toBeGreaterThanOrEqual(20);
    expect(after).toBeLessThanOrEqual(40);
    await link.gw!.whenBound(3_000);
    expect(link.smsc.binds).toHaveLength(2);
  });

  it('keeps its backoff growing for an SMSC that accepts binds and drops them at once', async () => {
    link.smsc.bind = () => 'accept';
    link.start({ reconnect: { baseMs: 20, maxMs: 2_000, stableMs: 5_000 } });
    for (let k = 1; k <= 4; k++) {
      await link.gw!.whenBound(3_000);
      link.smsc.dropAll();
      await until(`drop ${k} seen`, () => disconnects().length === k, { timeoutMs: 5_000, everyMs: 5 });
    }
    // Each drop came right after a bind: the delays keep doubling (equal jitter: [½, 1) of each step).
    expectBackoff(disconnects().map((s) => s.reconnectInMs!), 20, 2_000);
    expect(disconnects()[3]!.reconnectInMs!).toBeGreaterThanOrEqual(80);
  });

  it('gives up on a bind_transceiver left unanswered after bindTimeoutMs, retries, and sends what was queued exactly once', async () => {
    link.smsc.bind = (attempt) => (attempt < 2 ? 'silent' : 'accept');
    const { lines, logger } = recordingLogger();
    link.start({ bindTimeoutMs: 150, logger });
    const pending = link.gw!.submit(sms(1));
    await link.gw!.whenBound(3_000);
    expect(lines.filter((l) => l.msg === 'smpp bind timed out')).toHaveLength(2);
    for (const k of [0, 1]) {
      const c = link.smsc.connections[k]!;
      const lived = link.smsc.closes.find((x) => x.id === c.id)!.at - c.at;
      // The adapter's clock starts at connect(), a little before the SMSC's accept: some slack below.
      expect(lived).toBeGreaterThanOrEqual(150 - 30);
      expect(lived).toBeLessThanOrEqual(150 + 300);
    }
    await expect(pending).resolves.toEqual({ providerMessageId: expect.any(String) });
    expect(link.smsc.submits.map((s) => [s.session, s.text])).toEqual([[link.smsc.binds[0]!.session, smsText(1)]]);
  });

  it("answers the SMSC's own enquire_link, and nacks a request it does not handle without dropping the link", async () => {
    link.start({ enquireLinkMs: 40 });
    await link.gw!.whenBound();
    const [s] = link.smsc.boundSessions();
    await expect(link.smsc.request(s!, 'enquire_link')).resolves.toMatchObject({ command: 'enquire_link_resp', command_status: E.ESME_ROK });
    await expect(link.smsc.request(s!, 'query_sm', { message_id: '1', source_addr: 'NEXO' })).resolves.toMatchObject({
      command: 'generic_nack',
      command_status: E.ESME_RINVCMDID,
    });
    await until('the adapter keeps sending enquire_link', () => link.smsc.enquireLinks.length >= 3, { timeoutMs: 5_000, everyMs: 5 });
    expect(link.gw!.state).toBe('bound');
    expect(link.smsc.connections).toHaveLength(1);
  });

  // Found by an audit, fixed 2026-11-27: alert_notification was answered generic_nack ESME_RINVCMDID, though it takes no response.
  it('gives an alert_notification no answer at all, and the link stays up: bound, answering, and sending', async () => {
    link.start();
    await link.gw!.whenBound();
    const [s] = link.smsc.boundSessions();
    const answers: smpp.PDU[] = [];
    s!.on('pdu', (p: smpp.PDU) => void (p.isResponse() && answers.push(p)));
    const alert = new smpp.PDU('alert_notification', { source_addr: '84912300001', esme_addr: 'NEXO', ms_availability_status: 0 });
    expect(s!.send(alert)).toBe(true);
    // The adapter reads in order and answers at once: the enquire_link_resp comes after any answer to the alert.
    await expect(link.smsc.request(s!, 'enquire_link')).resolves.toMatchObject({ command: 'enquire_link_resp', command_status: E.ESME_ROK });
    expect(answers.map((p) => p.command)).toEqual(['enquire_link_resp']);
    expect(answers.some((p) => p.sequence_number === alert.sequence_number)).toBe(false);
    await expect(link.gw!.submit(sms(1))).resolves.toEqual({ providerMessageId: expect.any(String) });
    expect(link.gw!.state).toBe('bound');
    expect(link.smsc.connections).toHaveLength(1);
  });

  it('drops a link whose enquire_link goes unanswered (though submits are answered) within enquireLinkMs + enquireLinkTimeoutMs, then rebinds', async () => {
    link.smsc.answerEnquireLink = false;
    const { lines, logger } = recordingLogger();
    link.start({ enquireLinkMs: 60, enquireLinkTimeoutMs: 120, logger });
    await link.gw!.whenBound();
    await expect(link.gw!.submit(sms(1))).resolves.toEqual({ providerMessageId: expect.any(String) });
    await until('the silent link dropped', () => link.smsc.closes.length >= 1, { timeoutMs: 5_000, everyMs: 5 });
    link.smsc.answerEnquireLink = true;
    const lived = link.smsc.closes[0]!.at - link.smsc.binds[0]!.at;
    expect(lived).toBeGreaterThanOrEqual(60 + 120 - 20);
    expect(lived).toBeLessThanOrEqual(60 + 120 + 400);
    expect(lines.some((l) => l.msg === 'smpp enquire_link unanswered; dropping the link')).toBe(true);
    await until('rebound', () => link.smsc.binds.length === 2, { timeoutMs: 5_000, everyMs: 5 });
    await link.gw!.submit(sms(2));
    expect(link.smsc.submits.map((s) => s.text)).toEqual([smsText(1), smsText(2)]);
  });

  it('a window in flight when the socket drops: written submits fail connection_lost, queued ones go once each, in order, on the new bind', async () => {
    link.smsc.onSubmit = (seen) => (seen.session === 0 ? 'hold' : {});
    link.start({ window: 3 });
    await link.gw!.whenBound();
    const all = Array.from({ length: 8 }, (_, i) => settle(link.gw!.submit(sms(i))));
    await until('a full window held', () => link.smsc.held.length === 3, { timeoutMs: 5_000, everyMs: 5 });
    await sleep(30);
    expect(link.smsc.submits).toHaveLength(3); // the window is full: nothing more leaves
    link.smsc.dropAll();
    const results = await Promise.all(all);

    for (const r of results.slice(0, 3)) expect(r).toMatchObject({ ok: false, error: { code: 'connection_lost', retryable: true } });
    for (const r of results.slice(3)) expect(r).toMatchObject({ ok: true });
    const ids = results.slice(3).map((r) => (r.ok ? r.value.providerMessageId : ''));
    expect(new Set(ids).size).toBe(5);
    // Each message reached the SMSC exactly once: the three ambiguous ones were not re-sent.
    expect(link.smsc.submits.map((s) => s.text)).toEqual(Array.from({ length: 8 }, (_, i) => smsText(i)));
    expect(link.smsc.submits.slice(0, 3).every((s) => s.session === 0)).toBe(true);
    expect(link.smsc.submits.slice(3).every((s) => s.session === link.smsc.binds[1]!.session)).toBe(true);
    expect(link.smsc.maxOutstanding).toBeLessThanOrEqual(3);
    expect(link.gw!.stats()).toMatchObject({ state: 'bound', queued: 0, inflight: 0 });
  });

  it('answers that arrive just before the SMSC closes the socket count as accepted: no connection_lost, no re-send', async () => {
    link.smsc.onSubmit = (seen) => (seen.session === 0 ? 'hold' : {});
    link.start({ window: 3 });
    await link.gw!.whenBound();
    const all = [1, 2, 3].map((i) => link.gw!.submit(sms(i)));
    await until('three held', () => link.smsc.held.length === 3, { timeoutMs: 5_000, everyMs: 5 });
    const [s] = link.smsc.boundSessions();
    const ids = [...link.smsc.held].map((h) => link.smsc.answer(h));
    s!.close(); // FIN right behind the three submit_sm_resp
    await expect(Promise.all(all)).resolves.toEqual(ids.map((providerMessageId) => ({ providerMessageId })));
    await until('rebound', () => link.smsc.binds.length === 2, { timeoutMs: 5_000, everyMs: 5 });
    expect(link.smsc.submits).toHaveLength(3);
  });

  it('an unbind from the SMSC is answered with unbind_resp; the adapter rebinds and sends on the new session', async () => {
    link.start();
    await link.gw!.whenBound();
    const [s] = link.smsc.boundSessions();
    await expect(link.smsc.request(s!, 'unbind')).resolves.toMatchObject({ command: 'unbind_resp', command_status: E.ESME_ROK });
    await until('rebound after the unbind', () => link.smsc.binds.length === 2, { timeoutMs: 5_000, everyMs: 5 });
    await link.gw!.submit(sms(1));
    expect(link.smsc.submits.map((x) => x.session)).toEqual([link.smsc.binds[1]!.session]);
    expect(disconnects()).toHaveLength(1);
  });

  it('close() waits closeGraceMs for unanswered submits, unbinds, and fails the still-unanswered one as ambiguous, never as not-sent', async () => {
    link.smsc.onSubmit = () => 'hold';
    link.start({ window: 2, closeGraceMs: 200 });
    await link.gw!.whenBound();
    const a = settle(link.gw!.submit(sms(1)));
    const b = settle(link.gw!.submit(sms(2)));
    await until('both held', () => link.smsc.held.length === 2, { timeoutMs: 5_000, everyMs: 5 });
    const closing = link.gw!.close();
    await sleep(40);
    const idA = link.smsc.answer(link.smsc.held[0]!); // answered within the grace
    await closing;
    expect(await a).toEqual({ ok: true, value: { providerMessageId: idA } });
    const rb = await b;
    // It was written: the SMSC may have taken it. `closed` with detail not_sent would let a failover send it twice.
    expect(rb.ok).toBe(false);
    expect(rb.ok ? undefined : rb.error.detail).not.toBe('not_sent');
    expect(['connection_lost', 'timeout']).toContain(rb.ok ? '' : rb.error.code);
    expect(link.smsc.unbinds).toHaveLength(1);
    expect(link.gw!.state).toBe('closed');
  });

  it('close() during a reconnect backoff fails queued submits as not sent and never connects again', async () => {
    link.start({ reconnect: { baseMs: 150, maxMs: 150 } });
    await link.gw!.whenBound();
    link.smsc.dropAll();
    await until('dropped', () => disconnects().length === 1, { timeoutMs: 5_000, everyMs: 5 });
    const queued = settle(link.gw!.submit(sms(1)));
    await link.gw!.close();
    expect(await queued).toMatchObject({ ok: false, error: { code: 'closed', detail: 'not_sent' } });
    const connections = link.smsc.connections.length;
    await sleep(250);
    expect(link.smsc.connections).toHaveLength(connections);
    expect(link.smsc.submits).toHaveLength(0);
    expect(link.gw!.state).toBe('closed');
  });
});
