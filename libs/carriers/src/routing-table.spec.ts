import { pickChannel } from '#domain';
import { RoutingTable, defaultRoutingConfig, nextStepIndex } from './routing-table.js';

const table = RoutingTable.fromConfig({
  viettel: { voice: ['vox', 'sim'], sms: ['agg', 'smsc'] },
  mobifone: { sms: ['agg'] },
  vinaphone: { voice: ['vox'] },
});

describe('routing table plans', () => {
  it('orders the asked channel’s providers first, then the other channel’s when the customer asked auto', () => {
    expect(table.plan('viettel', 'voice', true)).toEqual([
      { provider: 'vox', channel: 'voice' },
      { provider: 'sim', channel: 'voice' },
      { provider: 'agg', channel: 'sms' },
      { provider: 'smsc', channel: 'sms' },
    ]);
  });

  it('never changes channel when the customer named one', () => {
    expect(table.plan('viettel', 'voice', false)).toEqual([
      { provider: 'vox', channel: 'voice' },
      { provider: 'sim', channel: 'voice' },
    ]);
    expect(table.plan('viettel', 'sms', false).map((s) => s.channel)).toEqual(['sms', 'sms']);
  });

  it('gives Mobifone SMS only, even on auto: it has no voice', () => {
    expect(table.plan('mobifone', 'sms', true)).toEqual([{ provider: 'agg', channel: 'sms' }]);
    expect(table.plan('mobifone', 'voice', false)).toEqual([]);
  });

  it('has no route for Gmobile, Itelecom, Reddi unless configured', () => {
    for (const c of ['gmobile', 'itelecom', 'reddi'] as const) expect(table.plan(c, 'sms', true)).toEqual([]);
    const withReddi = RoutingTable.fromConfig({ reddi: { sms: ['agg'] } });
    expect(withReddi.plan('reddi', 'sms', true)).toEqual([{ provider: 'agg', channel: 'sms' }]);
  });

  it('answers pickChannel the same way, so the API’s no_route agrees with the dispatcher', () => {
    const routes = table.channelsByCarrier();
    expect(pickChannel('vinaphone', 'auto', routes)).toBe('voice');
    expect(pickChannel('vinaphone', 'sms', routes)).toBeNull();
    expect(pickChannel('mobifone', 'auto', routes)).toBe('sms');
    expect(pickChannel('gmobile', 'auto', routes)).toBeNull();
  });

  it('defaults to the product routes through one provider', () => {
    const d = RoutingTable.fromConfig(defaultRoutingConfig('simulator'));
    expect(d.channelsByCarrier()).toEqual({
      viettel: ['voice', 'sms'],
      vinaphone: ['voice', 'sms'],
      vietnamobile: ['voice', 'sms'],
      mobifone: ['sms'],
      gmobile: [],
      itelecom: [],
      reddi: [],
    });
  });
});

describe('failover', () => {
  const plan = table.plan('viettel', 'voice', true);
  it('moves to the next step on a retryable failure', () => {
    expect(nextStepIndex(plan, 0, true)).toBe(1);
    expect(nextStepIndex(plan, 1, true)).toBe(2);
  });
  it('stops on a non-retryable failure or at the end of the plan', () => {
    expect(nextStepIndex(plan, 0, false)).toBeNull();
    expect(nextStepIndex(plan, plan.length - 1, true)).toBeNull();
  });
});

describe('routing config validation', () => {
  it('refuses unknown carriers, channels, duplicate providers and bad names', () => {
    expect(() => RoutingTable.fromConfig({ laos: { sms: ['a'] } })).toThrow();
    expect(() => RoutingTable.fromConfig({ viettel: { fax: ['a'] } })).toThrow();
    expect(() => RoutingTable.fromConfig({ viettel: { sms: ['a', 'a'] } })).toThrow(/twice/);
    expect(() => RoutingTable.fromConfig({ viettel: { sms: ['Bad Name'] } })).toThrow();
  });
  it('refuses a voice route for Mobifone, which has none (the API would otherwise accept and charge it)', () => {
    expect(() => RoutingTable.fromConfig({ mobifone: { sms: ['a'], voice: ['a'] } })).toThrow(/mobifone has no voice/);
    expect(RoutingTable.fromConfig({ mobifone: { sms: ['a'], voice: [] } }).channelsByCarrier().mobifone).toEqual(['sms']);
  });
  it('refuses a route to a provider that is not configured', () => {
    expect(() => RoutingTable.fromConfig({ viettel: { sms: ['ghost'] } }, ['agg'])).toThrow(/unknown provider "ghost"/);
  });
});
