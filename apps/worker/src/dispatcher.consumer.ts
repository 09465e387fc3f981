/**
 * Dispatcher: turns an accepted OTP into a carrier submission. Consumes
 * `nexo.otp.dispatch` keyed by phone hash, so one owner decides each phone's
 * 30 s window (I8). Idempotent: it reads the OTP's stream first, and an OTP
 * already routed, given up on, or expired is left alone.
 *
 * A message whose phone window is taken (a second OTP to the same phone, or
 * the failover after an ambiguous error, which keeps the window) is parked in
 * a local table instead of waiting inside the batch: the bus hands batches
 * one at a time, so one phone waiting out its 30 s would hold up every other
 * phone behind it. Parked rows are durable (the batch commits only after the
 * row is written) and are dispatched when their window opens, across restarts.
 * For the same reason a submit still running after `detachAfterMs` (a slow or
 * hung upstream) is parked and finished in the background: one upstream's
 * timeouts must not hold every other carrier's OTPs behind its batch.
 */
import { forEachKeyInOrder, TOPICS, type Consumer } from '#bus';
import { CarrierError, nextStepIndex, PhoneLimiter, renderMessage, type SubmitRequest } from '#carriers';
import { otpDecider, otpStream, PHONE_WINDOW_SKEW_MS, phoneWindowDecider, phoneWindowHolder, phoneWindowOpensAt, phoneWindowStream } from '#domain';
import type { DispatchMessage as Dispatch } from './messages.js';
import { DispatchMessage } from './messages.js';
import type { WorkerDeps } from './worker.deps.js';

export interface DispatcherOptions {
  /** Phones served at once within a batch. */
  concurrency?: number;
  limiter?: PhoneLimiter;
  /** I8's window when no limiter is given; the upstream's rule is 30 s. */
  phoneWindowMs?: number;
  /** A window that opens within this is waited for in the batch; a longer wait parks the message. */
  maxInlineWaitMs?: number;
  /** How often parked messages are looked at. */
  parkedPollMs?: number;
  /**
   * A dispatch still submitting after this long (a slow or hung upstream) leaves its batch: it is
   * parked durably and finished in the background, so the bus hands over the next batch and the
   * other phones behind it are not held up by one upstream's timeouts. Default 1 s.
   */
  detachAfterMs?: number;
  /**
   * Take each window in the event log too (`phone-window-<hash>`, appended at the expected revision),
   * for when another dispatcher may have sent to the phone: on Kafka, a rebalance or a recreated
   * worker gives a phone to an owner whose file never saw its last submission. One append per
   * submission; the embedded default has one dispatcher and leaves it off.
   */
  sharedWindows?: boolean;
  /** An upstream took a message (before its `Routed` is appended): receipts may race the append. */
  onSubmitted?: (provider: string, providerMessageId: string, otpId: string, accountId: string) => void;
}

export interface Dispatcher extends Consumer {
  /** Messages parked until their phone's window opens. */
  parked(): number;
}


/** When a parked row whose dispatch is still in hand is looked at again. */
const IN_HAND_RECHECK_MS = 5_000;

/** Submissions an upstream took whose `Routed` append failed, remembered (by holder) so the retry records them instead of sending again. */
const UNRECORDED_REMEMBERED = 10_000;

/** How often the phone windows opened meanwhile are written to disk. */
const WINDOWS_FLUSH_MS = 250;

/**
 * Puts the phone windows the dispatcher wrote to `db` back into a limiter: the dispatcher's own at
 * start, and the embedded API's, whose `429 rate_limited` would otherwise forget them at a restart.
 * Nothing when the dispatcher never ran on this file.
 */
export function restorePhoneWindows(db: WorkerDeps['db'], limiter: PhoneLimiter): void {
  if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'phone_window_log'").get()) return;
  for (const w of db.prepare<[], { phone_hash: string; since_ms: number }>('SELECT phone_hash, since_ms FROM phone_window_log ORDER BY since_ms, rowid').all()) {
    limiter.restore(w.phone_hash, w.since_ms);
  }
}

interface ParkedRow {
  otp_id: string;
  phone_hash: string;
  body: string;
}

export async function startDispatcher(deps: WorkerDeps, options: DispatcherOptions = {}): Promise<Dispatcher> {
  const { runner, carriers, cipher, logger, clock, db } = deps;
  const nowMs = () => clock().getTime();
  const limiter = options.limiter ?? new PhoneLimiter({ windowMs: options.phoneWindowMs ?? 30_000, now: nowMs });
  const maxInlineWait = options.maxInlineWaitMs ?? 200;
  const detachAfterMs = options.detachAfterMs ?? 1_000;

  db.exec(`CREATE TABLE IF NOT EXISTS dispatch_parked (otp_id TEXT PRIMARY KEY, phone_hash TEXT NOT NULL, body TEXT NOT NULL, due_ms INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS dispatch_parked_due ON dispatch_parked (due_ms)`);
  const park = db.prepare<[string, string, string, number]>('INSERT OR IGNORE INTO dispatch_parked (otp_id, phone_hash, body, due_ms) VALUES (?, ?, ?, ?)');
  const repark = db.prepare<[number, string]>('UPDATE dispatch_parked SET due_ms = ? WHERE otp_id = ?');
  const unpark = db.prepare<[string]>('DELETE FROM dispatch_parked WHERE otp_id = ?');
  // A literal LIMIT: a bound one makes SQLite prepare the statement again at every scan.
  const due = db.prepare<[number], ParkedRow>('SELECT otp_id, phone_hash, body FROM dispatch_parked WHERE due_ms <= ? ORDER BY due_ms, rowid LIMIT 512');
  // Each phone's window, on disk as well as in the limiter: a restarted dispatcher (a crash, a deploy)
  // would otherwise forget them and submit to a phone again within its 30 s (I8). Appended in time
  // order, a batch every WINDOWS_FLUSH_MS: one commit per batch, not one per phone, which measured
  // ~10 % of the main thread's time per OTP at full speed. A crash forgets at most that last stretch.
  // Windows released early (a submit that never left) are not written: after a restart such a phone
  // waits out the rest of its window, which errs on the safe side.
  db.exec(`CREATE TABLE IF NOT EXISTS phone_window_log (since_ms INTEGER NOT NULL, phone_hash TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS phone_window_log_since ON phone_window_log (since_ms)`);
  const logWindow = db.prepare<[number, string]>('INSERT INTO phone_window_log (since_ms, phone_hash) VALUES (?, ?)');
  const pruneWindows = db.prepare<[number]>('DELETE FROM phone_window_log WHERE since_ms <= ?');
  const windowMs = limiter.windowLengthMs;
  // Another worker's window started by its clock: the margin covers clocks that differ by up to a second.
  const sharedWindowMs = windowMs + PHONE_WINDOW_SKEW_MS;
  pruneWindows.run(nowMs() - windowMs);
  restorePhoneWindows(db, limiter);
  let nextWindowPrune = nowMs() + windowMs;
  /** Windows opened since the last write. */
  let windowsOpened: { hash: string; since: number }[] = [];
  const writeWindows = db.transaction((rows: { hash: string; since: number }[]) => {
    for (const r of rows) logWindow.run(r.since, r.hash);
  });
  function flushWindows(): void {
    if (windowsOpened.length === 0 || !db.open) return;
    const rows = windowsOpened;
    windowsOpened = [];
    try {
      writeWindows(rows);
    } catch (error) {
      // The limiter in memory still holds them; only a restart now would forget them.
      logger.error({ err: error }, 'recording phone windows failed');
    }
  }

  /** Phones with parked messages: a newer message to such a phone queues behind them. */
  const parkedPhones = new Map<string, number>();
  for (const r of db.prepare<[], { phone_hash: string; n: number }>('SELECT phone_hash, count(*) AS n FROM dispatch_parked GROUP BY phone_hash').all()) {
    parkedPhones.set(r.phone_hash, r.n);
  }
  const countPhone = (phoneHash: string, delta: number) => {
    const n = (parkedPhones.get(phoneHash) ?? 0) + delta;
    if (n > 0) parkedPhones.set(phoneHash, n);
    else parkedPhones.delete(phoneHash);
  };
  /** OTPs being dispatched in this process: a redelivered copy must not submit beside the one in hand. */
  const inHand = new Set<string>();

  /** Takes the phone's window; a number is the time to come back when it is not free soon. */
  async function takeWindow(phoneHash: string, holder: string): Promise<number | undefined> {
    for (;;) {
      const d = limiter.tryAcquire(phoneHash);
      let waitMs = d.allowed ? 0 : d.retryAfterMs;
      if (d.allowed && options.sharedWindows) {
        const opensAt = await takeSharedWindow(phoneHash, holder);
        if (opensAt !== undefined) waitMs = Math.max(1, opensAt - nowMs());
      }
      if (d.allowed && waitMs <= 0) {
        windowsOpened.push({ hash: phoneHash, since: nowMs() });
        return undefined;
      }
      if (waitMs > maxInlineWait) return nowMs() + waitMs;
      await new Promise((r) => setTimeout(r, Math.max(1, waitMs)));
    }
  }

  /**
   * The log's say on a window the limiter just gave: undefined when this holder now has it, or when
   * it opens. A window another dispatcher took replaces the limiter's, so the phone waits here too.
   */
  async function takeSharedWindow(phoneHash: string, holder: string): Promise<number | undefined> {
    const at = clock();
    let result;
    try {
      result = await runner.handle(phoneWindowStream(phoneHash), phoneWindowDecider, { type: 'TakePhoneWindow', holder, at: at.toISOString(), windowMs: sharedWindowMs });
    } catch (error) {
      limiter.release(phoneHash);
      throw error;
    }
    if (result.events.length > 0) return undefined;
    const { state } = result;
    // In place of the window tryAcquire just opened here (restore alone skips a window that has just run out).
    limiter.release(phoneHash);
    limiter.restore(phoneHash, state.sinceMs!);
    return phoneWindowOpensAt(state, at.getTime(), sharedWindowMs) ?? at.getTime() + 1;
  }

  /** Gives a window back in the log as well; a failure leaves it to run out, which errs on the safe side. */
  async function releaseWindow(phoneHash: string, holder: string): Promise<void> {
    limiter.release(phoneHash);
    if (!options.sharedWindows) return;
    try {
      await runner.handle(phoneWindowStream(phoneHash), phoneWindowDecider, { type: 'ReleasePhoneWindow', holder, at: clock().toISOString() });
    } catch (error) {
      logger.warn({ err: error, holder }, 'giving a phone window back failed; it runs out instead');
    }
  }

  /** Resolves with a time to park the message until, or undefined when the OTP needs nothing more from this message. */
  async function dispatch(m: Dispatch, fromParked: boolean): Promise<number | undefined> {
    if (inHand.has(m.otpId)) return undefined;
    if (!fromParked && parkedPhones.has(m.phoneHash)) return nowMs();
    inHand.add(m.otpId);
    try {
      return await submitUntilDone(m);
    } finally {
      inHand.delete(m.otpId);
    }
  }

  type Taken = { provider: string; channel: SubmitRequest['channel']; providerMessageId: string; at: string };
  /** Taken by an upstream, `Routed` not durable yet: by holder (`<otpId>/<attempt>`), oldest first. */
  const unrecorded = new Map<string, Taken>();
  /** Appends the attempt's `Routed`; until that is durable the attempt is remembered, so a retry records it instead of sending again. */
  async function recordRouted(m: Dispatch, stream: string, holder: string, { attempt, ...taken }: Taken & { attempt: number }): Promise<void> {
    unrecorded.set(holder, taken);
    if (unrecorded.size > UNRECORDED_REMEMBERED) unrecorded.delete(unrecorded.keys().next().value as string);
    await runner.handle(stream, otpDecider, { type: 'RecordRouted', attempt, carrier: m.carrier, ...taken }, { accountId: m.accountId });
    unrecorded.delete(holder);
  }

  async function submitUntilDone(m: Dispatch): Promise<number | undefined> {
    const stream = otpStream(m.otpId);
    const { state } = await runner.peek(stream, otpDecider);
    // The next attempt reached its upstream here but its `Routed` append failed (the log refused
    // writes for a while): record it as it was, whatever came meanwhile (its receipt, say), and send nothing.
    const nextHolder = phoneWindowHolder(m.otpId, state.lastAttempt + 1);
    const taken = unrecorded.get(nextHolder);
    if (taken !== undefined && !state.expired && !state.finalFailure) {
      await recordRouted(m, stream, nextHolder, { attempt: state.lastAttempt + 1, ...taken });
      return undefined;
    }
    // A receipt means some upstream took it (after an ambiguous failure, while this waited for the
    // phone's window): it is settled from that receipt, never sent again.
    if (state.routed.size > 0 || state.receipts.size > 0 || state.expired || state.finalFailure) return undefined;
    const plan = carriers.routing.plan(m.carrier, m.channel, m.auto);
    const metadata = { accountId: m.accountId };
    let step = state.failures;
    let attempt = state.lastAttempt + 1;
    if (plan.length === 0 || step >= plan.length) {
      await runner.handle(
        stream,
        otpDecider,
        { type: 'RecordRouteFailed', attempt, provider: plan[0]?.provider ?? 'none', error: 'no_route', retryable: false, final: true, at: clock().toISOString() },
        metadata,
      );
      return undefined;
    }
    let opened: { code: string; phoneE164: string } | undefined;
    for (;;) {
      const { provider, channel } = plan[step];
      const gateway = carriers.gateways.get(provider);
      const holder = phoneWindowHolder(m.otpId, attempt);
      const later = await takeWindow(m.phoneHash, holder);
      if (later !== undefined) return later;
      opened ??= { code: cipher.open(m.code), phoneE164: cipher.open(m.phone) };
      const request = { otpId: m.otpId, attempt, phoneE164: opened.phoneE164, carrier: m.carrier, ...renderMessage(channel, opened.code, m.template) } as SubmitRequest;
      const started = performance.now();
      let providerMessageId: string | undefined;
      let failure: CarrierError | undefined;
      try {
        if (!gateway) throw new CarrierError(provider, 'unavailable', true, `provider ${provider} is not configured`);
        ({ providerMessageId } = await gateway.submit(request));
      } catch (error) {
        failure = error instanceof CarrierError ? error : new CarrierError(provider, 'network', true, 'submit failed');
      }
      if (providerMessageId !== undefined) {
        deps.metrics?.submitted?.(provider, (performance.now() - started) / 1000);
        options.onSubmitted?.(provider, providerMessageId, m.otpId, m.accountId);
        // Outside the submit's error handling: a failed append is not a carrier failure (the upstream
        // took the message), so it must not fail over. The batch comes again, and this process records
        // the attempt from `unrecorded` without sending it again; another process, or this one after a
        // restart, resubmits the same attempt, which an HTTP upstream deduplicates by its Idempotency-Key.
        await recordRouted(m, stream, holder, { attempt, provider, channel, providerMessageId, at: clock().toISOString() });
        return undefined;
      }
      const e = failure ?? new CarrierError(provider, 'network', true, 'submit failed');
      deps.metrics?.submitted?.(provider, (performance.now() - started) / 1000, e.code);
      // The window stays taken when the upstream may have the message (CarrierError.ambiguous).
      if (!e.ambiguous) await releaseWindow(m.phoneHash, holder);
      const next = nextStepIndex(plan, step, e.retryable);
      logger.warn({ otpId: m.otpId, provider, attempt, error: e.code, retryable: e.retryable, final: next === null }, 'carrier submit failed');
      await runner.handle(
        stream,
        otpDecider,
        {
          type: 'RecordRouteFailed',
          attempt,
          provider,
          error: e.detail ? `${e.code}: ${e.detail}` : e.code,
          retryable: e.retryable,
          ...(next === null ? { final: true } : {}),
          at: clock().toISOString(),
        },
        metadata,
      );
      if (next === null) return undefined;
      step = next;
      attempt += 1;
    }
  }

  /** Dispatches finishing in the background after they left their batch. */
  const detached = new Set<Promise<void>>();

  async function fromBus(m: Dispatch): Promise<void> {
    const work = dispatch(m, false);
    let timer: NodeJS.Timeout | undefined;
    const slow = new Promise<'slow'>((resolve) => (timer = setTimeout(() => resolve('slow'), detachAfterMs)));
    const first = await Promise.race([work, slow]).finally(() => clearTimeout(timer));
    if (first !== 'slow') {
      if (first !== undefined && park.run(m.otpId, m.phoneHash, JSON.stringify(m), first).changes === 1) countPhone(m.phoneHash, 1);
      return;
    }
    // Parked before the batch commits, so a crash from here on finds it in the table (and the phone's
    // window on disk): it is dispatched again from there, as any parked message. Newer messages to
    // the phone queue behind it meanwhile; the parked loop leaves it alone while it is in hand.
    if (park.run(m.otpId, m.phoneHash, JSON.stringify(m), nowMs() + IN_HAND_RECHECK_MS).changes === 1) countPhone(m.phoneHash, 1);
    const done = work
      .then(
        (until) => settleParked(m.otpId, m.phoneHash, until),
        (error: unknown) => {
          logger.error({ err: error, otpId: m.otpId }, 'dispatch failed after leaving its batch; trying again from the parked table');
          settleParked(m.otpId, m.phoneHash, nowMs() + 1_000);
        },
      )
      .finally(() => detached.delete(done));
    detached.add(done);
  }

  function settleParked(otpId: string, phoneHash: string, until: number | undefined): void {
    if (!db.open) return;
    if (until !== undefined) repark.run(until, otpId);
    else if (unpark.run(otpId).changes === 1) countPhone(phoneHash, -1);
  }

  async function fromParked(row: ParkedRow): Promise<void> {
    // Still submitting in the background (it left its batch): its own outcome settles the row.
    if (inHand.has(row.otp_id)) return void repark.run(nowMs() + IN_HAND_RECHECK_MS, row.otp_id);
    const m = DispatchMessage.parse(JSON.parse(row.body));
    let until: number | undefined;
    try {
      until = await dispatch(m, true);
    } catch (error) {
      logger.error({ err: error, otpId: row.otp_id }, 'parked dispatch failed; trying again');
      until = nowMs() + 1_000;
    }
    settleParked(row.otp_id, row.phone_hash, until);
  }

  // On its own timer: the parked loop can wait on a hung carrier for many seconds.
  const windowsFlush = setInterval(flushWindows, WINDOWS_FLUSH_MS);
  windowsFlush.unref();
  let running = true;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (running) {
      try {
        if (nowMs() >= nextWindowPrune) {
          pruneWindows.run(nowMs() - windowMs);
          nextWindowPrune = nowMs() + windowMs;
        }
        const rows = parkedPhones.size === 0 ? [] : due.all(nowMs());
        const lanes = new Map<string, ParkedRow[]>();
        for (const r of rows) lanes.set(r.phone_hash, [...(lanes.get(r.phone_hash) ?? []), r]);
        await Promise.all([...lanes.values()].map(async (lane) => {
          for (const r of lane) await fromParked(r);
        }));
      } catch (error) {
        if (!db.open) return;
        logger.error({ err: error }, 'parked dispatch scan failed');
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, options.parkedPollMs ?? 250);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  })();

  const consumer = await deps.bus.consume<unknown>('nexo-dispatcher', TOPICS.dispatch, (batch) =>
    forEachKeyInOrder(batch, (msg) => fromBus(DispatchMessage.parse(msg.value)), options.concurrency ?? 256),
  );
  return {
    lag: () => consumer.lag(),
    held: async () => (await consumer.held?.()) ?? 0,
    parked: () => [...parkedPhones.values()].reduce((a, b) => a + b, 0),
    async stop() {
      await consumer.stop();
      // Submits that left their batch end within their adapter's time budget; their rows are durable either way.
      await Promise.allSettled([...detached]);
      running = false;
      wake?.();
      await loop;
      clearInterval(windowsFlush);
      flushWindows();
    },
  };
}
