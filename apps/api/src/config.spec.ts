import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from './config.js';

describe('configuration from the environment', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('defaults to the embedded service on port 3000 with the price and test credits of the product', () => {
    const c = loadConfig({ NEXO_DATA_DIR: dir });
    expect(c).toMatchObject({ port: 3000, priceMicros: 22_000n, testCredits: 5, phoneIntervalMs: 30_000, expiryMs: 600_000, workers: 'embedded', webhookPrivateAddresses: 'deny' });
    expect(c.dbFile).toBe(join(dir, 'nexo.db'));
    expect(c.readModelsFile).toBe(join(dir, 'read-models.db'));
    expect(c.stateFile).toBe(join(dir, 'state.db'));
  });

  it('generates the embedded secrets once, readable by the owner only, and reuses them', () => {
    const first = loadConfig({ NEXO_DATA_DIR: dir });
    const second = loadConfig({ NEXO_DATA_DIR: dir });
    expect(second.cipherKeys).toEqual(first.cipherKeys);
    expect(second.phonePepper.equals(first.phonePepper)).toBe(true);
    expect(statSync(join(dir, 'secrets.json')).mode & 0o077).toBe(0);
    expect(readFileSync(join(dir, 'secrets.json'), 'utf8')).toContain('k1:');
  });

  it('creates a missing data directory readable by the owner only', () => {
    const fresh = join(dir, 'fresh', 'data');
    loadConfig({ NEXO_DATA_DIR: fresh });
    expect(statSync(fresh).mode & 0o777).toBe(0o700);
  });

  it.each([
    ['PORT', 'seventy'],
    ['HOST', 'not..a..host'],
    ['HOST', 'http://example.com'],
    ['HOST', '-lead.example'],
    ['NEXO_PRICE_USD', '0.0220001'],
    ['NEXO_PRICE_USD', '-1'],
    ['NEXO_CIPHER_KEYS', 'k1:abc'],
    ['NEXO_CARRIERS', '{not json'],
    ['NEXO_CARRIERS', '{"routes":{"viettel":{"sms":["nobody"]}}}'],
    ['NEXO_CARRIERS', '{"routes":{"mobifone":{"voice":["simulator"]}}}'],
    ['NEXO_WORKERS', 'sometimes'],
    ['NEXO_WEBHOOK_PRIVATE_ADDRESSES', 'yes'],
    ['NEXO_TRUST_PROXY', 'yes'],
    ['NEXO_TRUST_PROXY', '10'],
    ['ESDB_URL', 'http://localhost:2113'],
  ])('refuses a bad %s with an error naming it', (name, value) => {
    let error: unknown;
    try {
      loadConfig({ NEXO_DATA_DIR: dir, [name]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(name);
  });

  it('HOST takes IP addresses and host names', () => {
    for (const host of ['0.0.0.0', '127.0.0.1', '::', '::1', 'localhost', 'api.nexo.internal', 'api-1.example.com.']) {
      expect(loadConfig({ NEXO_DATA_DIR: dir, HOST: host }).host).toBe(host);
    }
  });

  it('NEXO_CARRIERS without providers says so, on one line', () => {
    let error: unknown;
    try {
      loadConfig({ NEXO_DATA_DIR: dir, NEXO_CARRIERS: '{"providers":[]}' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const lines = (error as Error).message.split('\n').slice(1);
    expect(lines).toEqual([expect.stringMatching(/^ {2}NEXO_CARRIERS\.providers: /)]);
  });

  it('NEXO_TRUST_PROXY counts the proxies in front: true is one, false none', () => {
    expect(loadConfig({ NEXO_DATA_DIR: dir }).trustProxy).toBe(0);
    expect(loadConfig({ NEXO_DATA_DIR: dir, NEXO_TRUST_PROXY: 'true' }).trustProxy).toBe(1);
    expect(loadConfig({ NEXO_DATA_DIR: dir, NEXO_TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ NEXO_DATA_DIR: dir, NEXO_TRUST_PROXY: 'false' }).trustProxy).toBe(0);
  });
});
