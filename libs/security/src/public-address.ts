/**
 * Which addresses a customer's webhook may point at. Signup is free and needs
 * no KYC, so a webhook URL is attacker input: without this, `PUT /webhook`
 * with `http://169.254.169.254/…` or `http://127.0.0.1:3000/…` would make the
 * sender POST to the cloud's metadata service or the service's own internals
 * with a path of the attacker's choosing. Only public unicast addresses are allowed (RFC 6890's
 * special-purpose registries); `allow` mode (`NEXO_WEBHOOK_PRIVATE_ADDRESSES`)
 * is for development and tests on one machine.
 *
 * The URL is checked when it is given (a literal address or a `localhost`
 * name) and again at every connection, on the address DNS returned, so a name
 * that resolves (or is re-pointed) to a private address is refused too.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/** `deny`: webhook endpoints must be public addresses; `allow`: any address (development, tests). */
export type PrivateAddressPolicy = 'deny' | 'allow';

const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 96], // unspecified, loopback, IPv4-compatible (deprecated)
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard
  ['2001::', 23], // IETF protocol assignments
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
}

/** The IPv4 address an IPv6 one carries (IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`), if any. */
function embeddedIpv4(ip: string): string | undefined {
  const m = /^(?:::ffff:|64:ff9b::)(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(ip);
  if (!m) return undefined;
  if (m[1]) return m[1];
  const hi = parseInt(m[2], 16);
  const lo = parseInt(m[3], 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** `[::1]`, as a URL writes an IPv6 host, is `::1`. */
const unbracketed = (host: string) => (host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host);

/** True for a public unicast IP address; false for private, loopback, link-local, reserved ones and non-addresses. */
export function isPublicAddress(ip: string): boolean {
  const bare = unbracketed(ip);
  const version = isIP(bare);
  if (version === 4) return !blocked.check(bare, 'ipv4');
  if (version !== 6) return false;
  const v4 = embeddedIpv4(bare);
  if (v4 !== undefined) return isIP(v4) === 4 && !blocked.check(v4, 'ipv4');
  return !blocked.check(bare, 'ipv6');
}

/** Why a webhook URL may not be used (a literal non-public address, a `localhost` name), or undefined. */
export function webhookUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return 'must be http or https';
  const host = parsed.hostname.toLowerCase().replace(/\.$/, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return 'must be a public address, not localhost';
  if (isIP(unbracketed(host)) !== 0 && !isPublicAddress(host)) return `must be a public address, not ${parsed.hostname}`;
  return undefined;
}

/** The error code of a connection refused because its address is not public. */
export const NOT_PUBLIC = 'ENOTPUBLIC';

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for sockets (`net.connect`, undici's `connect` option) that resolves as usual and
 * fails the connection when any address returned is not public.
 */
export function publicOnlyLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    const refused = addresses.find((a) => !isPublicAddress(a.address));
    if (refused) {
      const e: NodeJS.ErrnoException = new Error(`${hostname} resolves to ${refused.address}, not a public address (NEXO_WEBHOOK_PRIVATE_ADDRESSES=deny)`);
      e.code = NOT_PUBLIC;
      return callback(e, []);
    }
    if (options.all) return callback(null, addresses);
    return callback(null, addresses[0].address, addresses[0].family);
  });
}
