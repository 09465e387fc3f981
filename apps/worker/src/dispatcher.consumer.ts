/**
 * Dispatcher: turns an accepted OTP into a carrier submission. Consumes
 * `nexo.otp.dispatch` keyed by phone hash, so one owner decides each phone's
 * 30 s window (I8). Idempotent: it reads the OTP's stream first, and an OTP
 * already routed, given up on, or expired is left alone.
 */
import { forEachKeyInOrder, TOPICS, type Consumer } from '#bus';
import { CarrierError, nextStepIndex, PhoneLimiter, renderMessage, type SubmitRequest } from '#carriers';
import { otpDecider, otpStream } from '#domain';
import type { DispatchMessage as Dispatch } from './messages.js';
import { DispatchMessage } from './messages.js';
import type { WorkerDeps } from './worker.deps.js';

/** Errors that leave it unknown whether the upstream took the message: the phone's window stays taken. */
const AMBIGUOUS = new Set(['timeout', 'connection_lost']);

export async function startDispatcher(deps: WorkerDeps, options: { concurrency?: number; limiter?: PhoneLimiter } = {}): Promise<Consumer> {
  const limiter = options.limiter ?? new PhoneLimiter();
  const { runner, carriers, cipher, logger, clock } = deps;

  async function waitForWindow(phoneHash: string): Promise<void> {
    for (;;) {
      const d = limiter.tryAcquire(phoneHash);
      if (d.allowed) return;
      await new Promise((r) => setTimeout(r, d.retryAfterMs));
    }
  }

  async function dispatch(m: Dispatch): Promise<void> {
    const stream = otpStream(m.otpId);
    const { state } = await runner.peek(stream, otpDecider);
    if (state.routed.size > 0 || state.expired || state.finalFailure) return;
    const plan = carriers.routing.plan(m.carrier, m.channel, m.auto);
    const metadata = { accountId: m.accountId };
    let step = state.failures;
    let attempt = state.lastAttempt + 1;
    if (plan.length === 0 || step >= plan.length) {
      await runner.handle(stream, otpDecider, {
        type: 'RecordRouteFailed',
        attempt,
        provider: plan[0]?.provider ?? 'none',
        error: 'no_route',
        retryable: false,
        final: true,
        at: clock().toISOString(),
      }, metadata);
      return;
    }
    const code = cipher.open(m.code);
    const phoneE164 = cipher.open(m.phone);
    for (;;) {
      const { provider, channel } = plan[step];
      const gateway = carriers.gateways.get(provider);
      await waitForWindow(m.phoneHash);
      const request = { otpId: m.otpId, attempt, phoneE164, carrier: m.carrier, ...renderMessage(channel, code) } as SubmitRequest;
      const started = performance.now();
      try {
        if (!gateway) throw new CarrierError(provider, 'unavailable', true, `provider ${provider} is not configured`);
        const { providerMessageId } = await gateway.submit(request);
        deps.metrics?.submitted?.(provider, (performance.now() - started) / 1000);
        await runner.handle(
          stream,
          otpDecider,
          { type: 'RecordRouted', attempt, provider, carrier: m.carrier, channel, providerMessageId, at: clock().toISOString() },
          metadata,
        );
        return;
      } catch (error) {
        const e = error instanceof CarrierError ? error : new CarrierError(provider, 'network', true, 'submit failed');
        deps.metrics?.submitted?.(provider, (performance.now() - started) / 1000, e.code);
        if (!AMBIGUOUS.has(e.code)) limiter.release(m.phoneHash);
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
        if (next === null) return;
        step = next;
        attempt += 1;
      }
    }
  }

  return deps.bus.consume<unknown>('nexo-dispatcher', TOPICS.dispatch, (batch) =>
    forEachKeyInOrder(batch, (msg) => dispatch(DispatchMessage.parse(msg.value)), options.concurrency ?? 256),
  );
}
