import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { isPublicAddress, publicOnlyLookup, webhookUrlProblem } from './public-address.js';

describe('webhook endpoints: public addresses only', () => {
  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '203.0.114.1',
    '172.32.0.1',
    '100.128.0.1',
    '2606:4700:4700::1111',
    '2a00:1450:4001:82a::200e',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
  ])('%s is public', (ip) => {
    expect(isPublicAddress(ip)).toBe(true);
  });

  it.each([
    ['0.0.0.0', 'this network'],
    ['10.1.2.3', 'private'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['169.254.169.254', 'cloud metadata (link-local)'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['192.0.2.7', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback, as a URL writes it'],
    ['::127.0.0.1', 'IPv4-compatible loopback'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::ffff:7f00:1', 'IPv4-mapped loopback, hex'],
    ['::ffff:a9fe:a9fe', 'IPv4-mapped metadata address'],
    ['64:ff9b::a9fe:a9fe', 'NAT64 of the metadata address'],
    ['fd00::1', 'unique local'],
    ['fe80::1', 'link-local'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'documentation'],
    ['not-an-ip', 'not an address'],
  ])('%s is not (%s)', (ip) => {
    expect(isPublicAddress(ip)).toBe(false);
  });

  it('refuses URLs whose host is a non-public literal or a localhost name, in every spelling the URL parser accepts', () => {
    for (const url of [
      'http://127.0.0.1:3000/metrics',
      'http://2130706433/', // 127.0.0.1 as one number
      'http://0x7f.1/', // and in hex
      'http://[::1]:8080/hook',
      'http://[::ffff:169.254.169.254]/latest/meta-data',
      'http://169.254.169.254/latest/meta-data',
      'https://10.0.0.5/hook',
      'http://localhost:3000/',
      'http://LOCALHOST./',
      'http://api.localhost/',
    ]) {
      expect({ url, problem: webhookUrlProblem(url) }).toEqual({ url, problem: expect.stringMatching(/public address/) });
    }
    expect(webhookUrlProblem('ftp://example.com/')).toBe('must be http or https');
    expect(webhookUrlProblem('not a url')).toBe('is not a URL');
  });

  it('accepts public literals and names (names are checked again on the address DNS gives, at connect time)', () => {
    for (const url of ['https://hooks.example.com/nexo', 'http://8.8.8.8/h', 'https://[2606:4700:4700::1111]/h', 'https://127.0.0.1.example.com/']) {
      expect(webhookUrlProblem(url)).toBeUndefined();
    }
  });

  it('the connect-time lookup fails a name that resolves to a non-public address, and passes addresses through in both shapes', async () => {
    const lookup = (host: string, options: { all?: boolean }) =>
      new Promise<{ error: NodeJS.ErrnoException | null; address: unknown; family?: number }>((resolve) =>
        publicOnlyLookup(host, options, (error, address, family) => resolve({ error, address, family })),
      );
    const refused = await lookup('localhost', {});
    expect(refused.error).toMatchObject({ code: 'ENOTPUBLIC', message: expect.stringMatching(/^localhost resolves to (127\.0\.0\.1|::1), not a public address/) });
    // A literal public address needs no DNS: both shapes net.connect asks for.
    expect(await lookup('8.8.8.8', {})).toEqual({ error: null, address: '8.8.8.8', family: 4 });
    expect(await lookup('8.8.8.8', { all: true })).toEqual({ error: null, address: [{ address: '8.8.8.8', family: 4 }], family: undefined });
  });

  it('as undici connect option (how the webhook sender uses it), a name resolving to loopback never gets a connection', async () => {
    let connections = 0;
    const server = createServer((_, res) => res.end('ok')).on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const origin = `http://localhost:${(server.address() as AddressInfo).port}`;
    const guarded = new Agent({ connect: { timeout: 2_000, lookup: publicOnlyLookup } });
    const plain = new Agent({ connect: { timeout: 2_000 } });
    try {
      await expect(guarded.request({ origin, path: '/', method: 'GET' })).rejects.toMatchObject({ code: 'ENOTPUBLIC' });
      expect(connections).toBe(0);
      // The same request without the guard does connect: the refusal above is the lookup's.
      const res = await plain.request({ origin, path: '/', method: 'GET' });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
    } finally {
      await Promise.all([guarded.close(), plain.close()]);
      await new Promise((r) => server.close(r));
    }
  });
});
