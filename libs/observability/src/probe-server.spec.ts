import { createServer, type Server } from 'node:net';
import { startProbeServer, startingMetrics } from './probe-server.js';

describe('probe server', () => {
  let taken: Server;
  let port: number;
  beforeAll(async () => {
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    port = (taken.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => taken.close(() => resolve())));

  it('fails to start naming HOST and PORT and why, when it cannot listen', async () => {
    const start = startProbeServer({ port, host: '127.0.0.1', readiness: async () => ({ ok: true }), metrics: () => startingMetrics() });
    await expect(start).rejects.toThrow(`cannot listen on HOST=127.0.0.1 PORT=${port}: `);
    await expect(start).rejects.toThrow(/EADDRINUSE/);
  });

  it('answers the probes once listening', async () => {
    const probes = await startProbeServer({ port: 0, host: '127.0.0.1', readiness: async () => ({ ok: false, starting: true }), metrics: () => startingMetrics() });
    try {
      const ready = await fetch(`${probes.url}/health/ready`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ ok: false, starting: true });
      expect((await fetch(`${probes.url}/health/live`)).status).toBe(200);
      expect(await (await fetch(`${probes.url}/metrics`)).text()).toContain('nexo_process_starting 1');
    } finally {
      await probes.close();
    }
  });
});
