/**
 * What the benches that drive a running service share: how `npm start` runs
 * it, a free loopback port, and the send-otp requests they offer.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type autocannon from 'autocannon';

/**
 * The node flags `npm start` runs the service with. package.json is their one
 * home; benches that start the service themselves (to measure its own
 * process) read them from there, so they measure what a user runs.
 */
export function serviceNodeFlags(root: string): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const m = /\bnode((?: --\S+)*) dist\/apps\/api\/src\/main\.js/.exec(pkg.scripts.start);
  if (!m) throw new Error('the start script of package.json does not run dist/apps/api/src/main.js');
  return m[1].split(' ').filter(Boolean);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

let phoneCounter = 0;
/** Distinct numbers across Viettel/Vinaphone/Mobifone prefixes: 10 M before any repeats in one bench process. */
function nextPhone(): string {
  const n = phoneCounter++;
  const prefixes = ['091', '098', '090', '094', '086', '093', '097', '088'];
  return `${prefixes[n % prefixes.length]}${String(Math.floor(n / prefixes.length) % 10_000_000).padStart(7, '0')}`;
}

/** autocannon requests: `POST /api/v1/send-otp` by SMS, round-robin over `keys`, a new phone each time. */
export function sendOtpRequests(keys: readonly string[]): autocannon.Request[] {
  let k = 0;
  return [
    {
      method: 'POST',
      path: '/api/v1/send-otp',
      setupRequest: (req: autocannon.Request) => ({
        ...req,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${keys[k++ % keys.length]}` },
        body: JSON.stringify({ phone: nextPhone(), code: '482913', channel: 'sms' }),
      }),
    },
  ];
}
