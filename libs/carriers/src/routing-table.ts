/**
 * Routing table: carrier → channel → providers in order of preference.
 * A plan is the ordered list of (provider, channel) attempts for one OTP:
 * the asked channel's providers first, then (only when the customer asked
 * for `auto`) the other channel's, so a voice outage falls back to SMS.
 */
import { z } from 'zod';
import { CARRIERS, CarrierSchema, type Carrier, type Channel } from '#domain';

export const ProviderNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'provider names are lower-case [a-z0-9_-], ≤ 64');

const ProviderList = z
  .array(ProviderNameSchema)
  .max(8)
  .refine((ps) => new Set(ps).size === ps.length, 'a provider appears twice for the same route');

/** `{ viettel: { voice: ['vendor-a'], sms: ['vendor-a', 'smpp-b'] }, ... }`; a missing carrier or channel has no route. */
export const RoutingConfigSchema = z.partialRecord(
  CarrierSchema,
  z.object({ sms: ProviderList.optional(), voice: ProviderList.optional() }).strict(),
);
export type RoutingConfig = z.input<typeof RoutingConfigSchema>;

/** The product's default routes through one provider: voice and SMS where the carrier has both, Mobifone SMS only. */
export function defaultRoutingConfig(provider = 'simulator'): RoutingConfig {
  const both = { voice: [provider], sms: [provider] };
  return { viettel: both, vinaphone: both, vietnamobile: both, mobifone: { sms: [provider] } };
}

export interface RouteStep {
  provider: string;
  channel: Channel;
}

const other = (c: Channel): Channel => (c === 'voice' ? 'sms' : 'voice');

export class RoutingTable {
  private constructor(private readonly routes: ReadonlyMap<Carrier, Readonly<Record<Channel, readonly string[]>>>) {}

  /** Validates the config; with `knownProviders`, a route naming a provider nobody configured is refused at start. */
  static fromConfig(input: unknown, knownProviders?: Iterable<string>): RoutingTable {
    const config = RoutingConfigSchema.parse(input);
    // The API's contract: voice to Mobifone is `no_route`. A route for it would make the API accept and charge such sends.
    if ((config.mobifone?.voice?.length ?? 0) > 0) throw new Error('routing table: mobifone has no voice channel (voice to Mobifone is no_route); remove routes.mobifone.voice');
    const known = knownProviders ? new Set(knownProviders) : undefined;
    const routes = new Map<Carrier, Record<Channel, readonly string[]>>();
    for (const carrier of CARRIERS) {
      const r = config[carrier];
      const entry = { sms: r?.sms ?? [], voice: r?.voice ?? [] };
      for (const p of [...entry.sms, ...entry.voice]) {
        if (known && !known.has(p)) throw new Error(`routing table: ${carrier} routes to unknown provider "${p}"`);
      }
      routes.set(carrier, entry);
    }
    return new RoutingTable(routes);
  }

  providers(carrier: Carrier, channel: Channel): readonly string[] {
    return this.routes.get(carrier)?.[channel] ?? [];
  }

  /** Channels with at least one provider, in the shape `pickChannel` takes, so the API's `no_route` agrees with the table. */
  channelsByCarrier(): Record<Carrier, Channel[]> {
    const out = {} as Record<Carrier, Channel[]>;
    for (const carrier of CARRIERS) {
      out[carrier] = (['voice', 'sms'] as const).filter((c) => this.providers(carrier, c).length > 0);
    }
    return out;
  }

  plan(carrier: Carrier, channel: Channel, auto: boolean): RouteStep[] {
    const steps = this.providers(carrier, channel).map((provider) => ({ provider, channel }));
    if (auto) {
      const fallback = other(channel);
      steps.push(...this.providers(carrier, fallback).map((provider) => ({ provider, channel: fallback })));
    }
    return steps;
  }
}

/**
 * Index of the step to try after step `failedIndex` failed, or null when the
 * OTP has no route left. A non-retryable failure (bad number, rejected
 * content) would fail the same way elsewhere, so it ends the plan.
 */
export function nextStepIndex(plan: readonly RouteStep[], failedIndex: number, retryable: boolean): number | null {
  if (!retryable) return null;
  return failedIndex + 1 < plan.length ? failedIndex + 1 : null;
}
