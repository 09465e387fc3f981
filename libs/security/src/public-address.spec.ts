import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
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
    '::ffff:0:808:808',
    '64:ff9b::808:808',
    '64:ff9b:0:0:0:0:808:808',
    '2002:0808:0808::1',
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
    ['64:ff9b:0:0:0:0:7f00:1', 'NAT64 loopback, uncompressed'],
    ['0064:FF9B:0000:0000:0000:0000:7F00:0001', 'NAT64 loopback, upper case with leading zeros'],
    ['64:ff9b:0:0:0:0:127.0.0.1', 'NAT64 loopback, uncompressed with a dotted tail'],
    ['64:ff9b:1::808:808', 'local-use NAT64'],
    ['::ffff:0:7f00:1', 'IPv4-translated loopback'],
    ['::ffff:0:169.254.169.254', 'IPv4-translated metadata address'],
    ['2002:7f00:1::', '6to4 of loopback'],
    ['2002:a9fe:a9fe::1', '6to4 of the metadata address'],
    ['2002:0a00:0001::', '6to4 of a private address'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo'],
    ['fd00::1', 'unique local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local with a zone index'],
    ['fec0::1', 'site-local (deprecated)'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'documentation'],
    ['3fff::1', 'documentation (RFC 9637)'],
    ['3fff:fff:ffff::1', 'documentation (RFC 9637), end of the range'],
    ['5f00::1', 'SRv6 SID'],
    ['not-an-ip', 'not an address'],
  ])('%s is not (%s)', (ip) => {
    expect(isPublicAddress(ip)).toBe(false);
  });

  it('judges an IPv6 address that carries an IPv4 one by that IPv4 address, in every spelling of it', () => {
    const byte = fc.integer({ min: 0, max: 255 });
    // Half the draws start in a blocked IPv4 range, so both answers are exercised.
    const ipv4 = fc.tuple(fc.oneof(byte, fc.constantFrom(0, 10, 100, 127, 169, 172, 192, 198, 203, 224, 255)), byte, byte, byte);
    const hex = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
    fc.assert(
      fc.property(ipv4, ([a, b, c, d]) => {
        const dotted = `${a}.${b}.${c}.${d}`;
        const [high, low] = [hex(a, b), hex(c, d)];
        const expected = isPublicAddress(dotted);
        for (const form of [
          `::ffff:${dotted}`,
          `::ffff:${high}:${low}`,
          `64:ff9b::${high}:${low}`,
          `64:ff9b:0:0:0:0:${high}:${low}`,
          `64:FF9B:0000:0000:0000:0000:${high.padStart(4, '0').toUpperCase()}:${low.padStart(4, '0').toUpperCase()}`,
          `64:ff9b::${dotted}`,
          `2002:${high}:${low}::`,
          `2002:${high}:${low}:1::1`,
        ]) {
          expect({ form, public: isPublicAddress(form) }).toEqual({ form, public: expected });
        }
      }),
      { numRuns: 300 },
    );
  });

  it('refuses URLs whose host is a non-public literal or a localhost name, in every spelling the URL parser accepts', () => {
    for (const url of [
      'http://127.0.0.1:3000/metrics',
      'http://2130706433/', // 127.0.0.1 as one number
      'http://0x7f.1/', // and in hex
      'http://[::1]:8080/hook',
      'http://[::ffff:169.254.169.254]/latest/meta-data',
      'http://[2002:a9fe:a9fe::1]/latest/meta-data',
      'http://[64:ff9b:0:0:0:0:7f00:1]:3000/',
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
