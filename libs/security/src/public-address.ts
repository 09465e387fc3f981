/**
 * Which addresses a customer's webhook may point at. Signup is free and needs
 * no KYC, so a webhook URL is attacker input: without this, `PUT /webhook`
 * with `http://169.254.169.254/…` or `http://127.0.0.1:3000/…` would make the
 * sender POST to the cloud's metadata service or the service's own internals
 * with a path of the attacker's choosing. Only public unicast addresses are allowed (RFC 6890's
 * special-purpose registries); `allow` mode (`NEXO_WEBHOOK_PRIVATE_ADDRESSES`)
 * is for development and tests on one machine. An IPv6 address that carries an
 * IPv4 one a translator or relay may deliver to (IPv4-mapped, IPv4-translated,
 * NAT64, 6to4) is judged by that IPv4 address.
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
  ['3fff::', 20], // documentation (RFC 9637)
  ['5f00::', 16], // SRv6 SIDs (RFC 9602)
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local: deprecated (RFC 3879), but older internal networks may still use it
  ['ff00::', 8], // multicast
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
}

/**
 * IPv6 addresses that carry an IPv4 one a translator or relay on the path may deliver to: their
 * leading 16-bit groups, and the index of the group where the IPv4 address starts.
 */
const IPV4_CARRIERS: ReadonlyArray<readonly [prefix: readonly number[], at: number]> = [
  [[0, 0, 0, 0, 0, 0xffff], 6], // IPv4-mapped ::ffff:0:0/96
  [[0, 0, 0, 0, 0xffff, 0], 6], // IPv4-translated ::ffff:0:0:0/96 (RFC 2765)
  [[0x64, 0xff9b, 0, 0, 0, 0], 6], // NAT64 64:ff9b::/96 (RFC 6052)
  [[0x2002], 1], // 6to4 2002::/16, the IPv4 in bits 16-47 (RFC 3056)
];

/** One group of an IPv6 address's text as 16-bit numbers: a dotted IPv4 tail is two. */
const groupValues = (group: string): number[] => {
  if (!group.includes('.')) return [parseInt(group, 16)];
  const [a, b, c, d] = group.split('.').map(Number);
  return [(a << 8) | b, (c << 8) | d];
};

/**
 * The eight 16-bit groups of an address `isIP` accepted as IPv6 (without a zone index), in any
 * spelling: compressed or not, any case, leading zeros, a dotted IPv4 tail. Parsed rather than
 * matched so that no spelling of a carrier address slips past `IPV4_CARRIERS`.
 */
function ipv6Groups(ip: string): number[] {
  const groups = (part: string) => (part === '' ? [] : part.split(':').flatMap(groupValues));
  const [head, tail] = ip.split('::');
  const before = groups(head);
  const after = tail === undefined ? [] : groups(tail);
  return [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
}

/** The IPv4 address an IPv6 one carries (see `IPV4_CARRIERS`), if any. */
function embeddedIpv4(ip: string): string | undefined {
  const groups = ipv6Groups(ip);
  const carrier = IPV4_CARRIERS.find(([prefix]) => prefix.every((g, i) => groups[i] === g));
  if (!carrier) return undefined;
  const [hi, lo] = groups.slice(carrier[1], carrier[1] + 2);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** `[::1]`, as a URL writes an IPv6 host, is `::1`. */
const unbracketed = (host: string) => (host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host);

/** True for a public unicast IP address; false for private, loopback, link-local, reserved ones and non-addresses. */
export function isPublicAddress(ip: string): boolean {
  const bare = unbracketed(ip);
  const version = isIP(bare);
  if (version === 4) return !blocked.check(bare, 'ipv4');
  // A zone index (`fe80::1%eth0`) only means something on a non-global address, so none is public.
  if (version !== 6 || bare.includes('%')) return false;
  const v4 = embeddedIpv4(bare);
  if (v4 !== undefined) return !blocked.check(v4, 'ipv4');
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
