import type { Receipt } from './carrier-gateway.port.js';
import { CarriersConfigSchema, createCarriers } from './carriers.config.js';
import { HttpCarrierGateway } from './adapters/http.carrier-gateway.js';
import { SimulatorCarrierGateway } from './adapters/simulator/simulator.carrier-gateway.js';

describe('carriers config', () => {
  it('{} is the embedded default: one in-process simulator carrying the product routes', async () => {
    const got: Receipt[] = [];
    const c = createCarriers({}, { sink: (r) => void got.push(r) });
    expect([...c.gateways.keys()]).toEqual(['simulator']);
    expect(c.gateways.get('simulator')).toBeInstanceOf(SimulatorCarrierGateway);
    expect(c.routing.plan('viettel', 'voice', true)).toEqual([
      { provider: 'simulator', channel: 'voice' },
      { provider: 'simulator', channel: 'sms' },
    ]);
    expect(c.routing.plan('mobifone', 'voice', false)).toEqual([]);
    await c.close();
  });

  it('builds http gateways and routes to them by name', async () => {
    const c = createCarriers(
      {
        providers: [
          { kind: 'http', name: 'agg', baseUrl: 'http://127.0.0.1:9', secret: 'x'.repeat(16) },
          { kind: 'simulator', name: 'sandbox', simulator: { timeScale: 0 } },
        ],
        routes: { viettel: { sms: ['agg', 'sandbox'] } },
      },
      { sink: () => undefined },
    );
    expect(c.gateways.get('agg')).toBeInstanceOf(HttpCarrierGateway);
    expect(c.routing.plan('viettel', 'sms', false).map((s) => s.provider)).toEqual(['agg', 'sandbox']);
    await c.close();
  });

  it('refuses routes to unknown providers, duplicate names and weak secrets', () => {
    const sink = (): void => undefined;
    expect(() => createCarriers({ routes: { viettel: { sms: ['ghost'] } } }, { sink })).toThrow(/ghost/);
    // Refused by the schema itself, so a service's config check names NEXO_CARRIERS at start.
    expect(CarriersConfigSchema.safeParse({ routes: { viettel: { sms: ['ghost'] } } }).error?.issues[0]).toMatchObject({ path: ['routes'], message: expect.stringMatching(/unknown provider "ghost"/) });
    expect(CarriersConfigSchema.safeParse({ routes: { mobifone: { voice: ['simulator'] } } }).error?.issues[0]?.message).toMatch(/mobifone has no voice/);
    const sim = { kind: 'simulator', name: 'a' };
    expect(CarriersConfigSchema.safeParse({ providers: [sim, sim] }).success).toBe(false);
    expect(CarriersConfigSchema.safeParse({ providers: [{ kind: 'http', name: 'h', baseUrl: 'http://x', secret: 'short' }] }).success).toBe(false);
    const smpp = { kind: 'smpp', name: 's', host: 'smsc', port: 2775, systemId: 'nexo', password: 'pw', sourceAddr: 'NEXO' };
    expect(CarriersConfigSchema.safeParse({ providers: [smpp] }).success).toBe(true);
    expect(CarriersConfigSchema.safeParse({ providers: [{ ...smpp, password: 'longer-than-nine' }] }).success).toBe(false);
    // SMPP 3.4's field sizes count the terminating NUL: 15, 8 and 12 characters at most.
    const fits = { ...smpp, systemId: 's'.repeat(15), password: 'p'.repeat(8), systemType: 't'.repeat(12) };
    expect(CarriersConfigSchema.safeParse({ providers: [fits] }).success).toBe(true);
    for (const over of [{ systemId: 's'.repeat(16) }, { password: 'p'.repeat(9) }, { systemType: 't'.repeat(13) }]) {
      expect(CarriersConfigSchema.safeParse({ providers: [{ ...fits, ...over }] }).success).toBe(false);
    }
  });
});
