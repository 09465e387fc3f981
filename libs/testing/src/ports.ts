import { createServer } from 'node:net';

/** A loopback port free right now, for a server a test (or a bench) starts on a port it must know first. */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
