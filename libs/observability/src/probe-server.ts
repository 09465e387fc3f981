/**
 * The probes of a process without the API: `/health/live`, `/health/ready`
 * and `/metrics` on a small Fastify server. They answer from the first
 * moment, so a long catch-up shows as alive but not ready.
 */
import { isIP } from 'node:net';
import { fastify } from 'fastify';
import { Gauge, Registry } from 'prom-client';
import { z } from 'zod';

/** A host name (RFC 1123 labels) or an IP address, for `HOST`: a typo is a config error naming it, not a failed lookup at listen. */
export const ListenHostSchema = z
  .string()
  .min(1)
  .max(253)
  .refine((v) => isIP(v) !== 0 || /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$/.test(v), 'must be an IP address or a host name')
  .default('0.0.0.0');

/** Listens, or fails saying on what: the variables that chose it (`HOST`, `PORT`) and why (taken, not this machine's, unknown). */
export async function listenOn<T>(host: string, port: number, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    // The reason in the message, and its code (EADDRINUSE…) kept; no `cause`: the logger would print the reason twice.
    throw Object.assign(new Error(`cannot listen on HOST=${host} PORT=${port}: ${reason}`), { code: (error as { code?: unknown } | null)?.code });
  }
}

export interface ProbeServer {
  url: string;
  close(): Promise<void>;
}

export async function startProbeServer(options: {
  port: number;
  host: string;
  readiness(): Promise<{ ok: boolean } & Record<string, unknown>>;
  /** Undefined while the process is still starting: `/metrics` answers 503 then. */
  metrics(): RenderedMetrics | undefined;
  /**
   * What any other path answers, with 503 and `Retry-After: 1`: for a port that stands in for a
   * server still starting, whose clients must retry rather than take a 404 for an answer.
   */
  otherwise?: Record<string, unknown>;
}): Promise<ProbeServer> {
  const app = fastify({ logger: false });
  const { otherwise } = options;
  if (otherwise !== undefined) app.setNotFoundHandler((_request, reply) => reply.status(503).header('retry-after', '1').send(otherwise));
  app.get('/health/live', async () => ({ ok: true }));
  app.get('/health/ready', async (_request, reply) => {
    const r = await options.readiness();
    if (!r.ok) void reply.status(503);
    return r;
  });
  app.get('/metrics', async (_request, reply) => {
    const metrics = options.metrics();
    if (!metrics) return reply.status(503).send({ ok: false, error: 'starting' });
    void reply.header('content-type', metrics.contentType);
    return metrics.render();
  });
  await listenOn(options.host, options.port, () => app.listen({ port: options.port, host: options.host }));
  const address = app.server.address();
  const url = typeof address === 'object' && address ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` : '';
  return { url, close: () => app.close() };
}

export interface RenderedMetrics {
  contentType: string;
  render(): Promise<string>;
}

/**
 * What `/metrics` shows while a process starts, before its registry exists: a scrape that succeeds
 * (Prometheus would count a failed one as the target down) and says the process is starting.
 */
export function startingMetrics(): RenderedMetrics {
  const registry = new Registry();
  new Gauge({ name: 'nexo_process_starting', help: 'The process is starting (its read models catching up with the log); its other metrics come once it serves.', registers: [registry] }).set(1);
  return { contentType: registry.contentType, render: () => registry.metrics() };
}
