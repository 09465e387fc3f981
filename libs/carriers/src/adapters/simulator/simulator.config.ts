/**
 * Carrier simulator settings. Defaults follow the product promise: a voice
 * call rings and is answered in 5-10 s, SMS through Mobifone lands in 15-45 s,
 * other SMS in 2-8 s. Every field is optional; `{}` is the sandbox default.
 */
import { z } from 'zod';
import { CarrierSchema, type Carrier, type Channel } from '#domain';

const Rate = z.number().min(0).max(1);

/** Uniform latency between submit and receipt; `failureRate` overrides the global one for this route. */
export const LatencyProfileSchema = z
  .object({
    minMs: z.number().min(0).max(3_600_000),
    maxMs: z.number().min(0).max(3_600_000),
    failureRate: Rate.optional(),
  })
  .strict()
  .refine((p) => p.minMs <= p.maxMs, 'minMs must not exceed maxMs');
export type LatencyProfile = z.infer<typeof LatencyProfileSchema>;

const ChannelProfiles = z.object({ sms: LatencyProfileSchema.optional(), voice: LatencyProfileSchema.optional() }).strict();

export const DEFAULT_SMS_LATENCY: LatencyProfile = { minMs: 2_000, maxMs: 8_000 };
export const DEFAULT_VOICE_LATENCY: LatencyProfile = { minMs: 5_000, maxMs: 10_000 };
export const DEFAULT_LATENCY_BY_CARRIER: Partial<Record<Carrier, { sms?: LatencyProfile; voice?: LatencyProfile }>> = {
  mobifone: { sms: { minMs: 15_000, maxMs: 45_000 } },
};

export const SimulatorConfigSchema = z
  .object({
    /** Seed of the simulator's PRNG: the same seed and the same calls give the same outcomes and ids. */
    seed: z.number().int().default(1),
    /** Multiplies every latency: 1 real time, 0.001 for tests, 0 for benchmarks (receipts on the next tick). */
    timeScale: z.number().min(0).max(1000).default(1),
    latency: z
      .object({
        sms: LatencyProfileSchema.default(DEFAULT_SMS_LATENCY),
        voice: LatencyProfileSchema.default(DEFAULT_VOICE_LATENCY),
        /** Per carrier and channel; merged over the defaults (Mobifone SMS 15-45 s stays unless overridden). */
        byCarrier: z.partialRecord(CarrierSchema, ChannelProfiles).default({}),
      })
      .strict()
      .prefault({}),
    /** Share of accepted messages whose receipt is `undelivered` (SMS) or `unanswered` (voice). */
    failureRate: Rate.default(0.03),
    /** Share of messages that never get a receipt (Vietnamese operators often send none). */
    lostReceiptRate: Rate.default(0.02),
    /** Share of receipts sent twice: consumers must be idempotent. */
    duplicateReceiptRate: Rate.default(0.01),
    /** Share of submits refused with a transient error (HTTP 503, ESME_RSYSERR) before acceptance. */
    submitErrorRate: Rate.default(0),
    /** Submits accepted per second (token bucket, burst of the same size); beyond it HTTP 429 / ESME_RTHROTTLED. 0 = unlimited. */
    maxSubmitsPerSecond: z.number().int().min(0).default(0),
    /** Carriers the simulated upstream has no voice route for. */
    noVoice: z.array(CarrierSchema).default(['mobifone']),
  })
  .strict();

export type SimulatorConfigInput = z.input<typeof SimulatorConfigSchema>;
export type SimulatorConfig = z.output<typeof SimulatorConfigSchema>;

export function parseSimulatorConfig(input: unknown = {}): SimulatorConfig {
  return SimulatorConfigSchema.parse(input);
}

/** The profile for one route: byCarrier override, else the built-in carrier default, else the channel default. */
export function latencyFor(config: SimulatorConfig, carrier: Carrier, channel: Channel): LatencyProfile {
  return (
    config.latency.byCarrier[carrier]?.[channel] ??
    DEFAULT_LATENCY_BY_CARRIER[carrier]?.[channel] ??
    config.latency[channel]
  );
}
