/**
 * Which upstreams exist and how they are reached, validated at start.
 * `{}` gives the embedded default: one in-process simulator named
 * `simulator`, routed as the product promises (voice + SMS, Mobifone SMS).
 */
import { z } from 'zod';
import { silentLogger, type CarrierGateway, type CarrierLogger, type ReceiptSink } from './carrier-gateway.port.js';
import { HttpCarrierGateway } from './adapters/http.carrier-gateway.js';
import { SmppCarrierGateway } from './adapters/smpp.carrier-gateway.js';
import { SimulatorCarrierGateway } from './adapters/simulator/simulator.carrier-gateway.js';
import { SimulatorConfigSchema } from './adapters/simulator/simulator.config.js';
import { ProviderNameSchema, RoutingConfigSchema, RoutingTable, defaultRoutingConfig } from './routing-table.js';

const Ms = z.number().int().min(1).max(600_000);

export const ProviderConfigSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('simulator'), name: ProviderNameSchema, simulator: SimulatorConfigSchema.prefault({}) }).strict(),
  z
    .object({
      kind: z.literal('http'),
      name: ProviderNameSchema,
      baseUrl: z.url({ protocol: /^https?$/ }),
      secret: z.string().min(16),
      timeoutMs: Ms.optional(),
      maxRetries: z.number().int().min(0).max(5).optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('smpp'),
      name: ProviderNameSchema,
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535),
      // SMPP 3.4 sizes these C-strings with their terminating NUL (16, 9 and 13 octets).
      systemId: z.string().min(1).max(15),
      password: z.string().max(8),
      systemType: z.string().max(12).optional(),
      sourceAddr: z.string().min(1).max(20),
      window: z.number().int().min(1).max(100).optional(),
      enquireLinkMs: Ms.optional(),
      responseTimeoutMs: Ms.optional(),
      queueTimeoutMs: Ms.optional(),
    })
    .strict(),
]);
export type ProviderConfig = z.output<typeof ProviderConfigSchema>;

export const CarriersConfigSchema = z
  .object({
    providers: z
      .array(ProviderConfigSchema)
      .min(1)
      .default([{ kind: 'simulator', name: 'simulator', simulator: SimulatorConfigSchema.parse({}) }])
      .refine((ps) => new Set(ps.map((p) => p.name)).size === ps.length, 'provider names must be unique'),
    /** Defaults to every route through the first provider. */
    routes: RoutingConfigSchema.optional(),
  })
  .strict()
  // The routing table's own rules (a route to a provider nobody configured, voice to Mobifone) fail
  // the config at start, naming the variable, instead of the process later.
  .superRefine((config, ctx) => {
    // No provider is its own issue (above); zod still runs this refinement, which has nothing to check.
    if (config.providers.length === 0) return;
    try {
      RoutingTable.fromConfig(config.routes ?? defaultRoutingConfig(config.providers[0]!.name), config.providers.map((p) => p.name));
    } catch (error) {
      ctx.addIssue({ code: 'custom', path: ['routes'], message: (error as Error).message });
    }
  });
export type CarriersConfigInput = z.input<typeof CarriersConfigSchema>;

export interface Carriers {
  gateways: ReadonlyMap<string, CarrierGateway>;
  routing: RoutingTable;
  close(): Promise<void>;
}

const routingOf = (config: z.output<typeof CarriersConfigSchema>): RoutingTable =>
  RoutingTable.fromConfig(
    config.routes ?? defaultRoutingConfig(config.providers[0]!.name),
    config.providers.map((p) => p.name),
  );

/** The providers `createCarriers` opens, by name, read from the configuration alone. */
export const providerNames = (input: unknown): string[] => CarriersConfigSchema.parse(input ?? {}).providers.map((p) => p.name);

/** Builds every configured gateway. SMPP ones start connecting at once; HTTP ones deliver receipts on the API's callback, not to `sink`. */
export function createCarriers(input: unknown, deps: { sink: ReceiptSink; logger?: CarrierLogger; now?: () => number }): Carriers {
  const config = CarriersConfigSchema.parse(input ?? {});
  const logger = deps.logger ?? silentLogger;
  const routing = routingOf(config);
  const gateways = new Map<string, CarrierGateway>();
  for (const p of config.providers) {
    const common = { provider: p.name, logger, ...(deps.now ? { now: deps.now } : {}) };
    switch (p.kind) {
      case 'simulator':
        gateways.set(p.name, new SimulatorCarrierGateway({ ...common, config: p.simulator, sink: deps.sink }));
        break;
      case 'http': {
        const { kind: _k, name: _n, ...rest } = p;
        gateways.set(p.name, new HttpCarrierGateway({ ...common, ...rest }));
        break;
      }
      case 'smpp': {
        const { kind: _k, name: _n, ...rest } = p;
        gateways.set(p.name, SmppCarrierGateway.start({ ...common, ...rest, sink: deps.sink }));
        break;
      }
    }
  }
  return {
    gateways,
    routing,
    close: async () => {
      await Promise.all([...gateways.values()].map((g) => g.close()));
    },
  };
}

/**
 * The routing table (which channels each carrier has a route for) without any gateway: for a
 * process that submits nothing, an API beside distributed workers. Opening the gateways there
 * would bind one more SMPP session per provider and replica, and SMSCs cap binds per account.
 */
export function routingOnly(input: unknown): Carriers {
  return { gateways: new Map(), routing: routingOf(CarriersConfigSchema.parse(input ?? {})), close: async () => undefined };
}

/** `NEXO_CARRIERS` as an environment variable: JSON text (empty or unset: the embedded default). */
export const CarriersConfigEnvSchema = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v.trim() === '') return {};
    try {
      return JSON.parse(v) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be JSON' });
      return z.NEVER;
    }
  })
  .pipe(CarriersConfigSchema);
