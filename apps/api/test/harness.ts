/** A real NEXO ROUTE on an ephemeral loopback port with a temp data dir, for whole-system tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, linesInto } from '#observability';
import { loadConfig } from '../src/config.js';
import { createApp, type RunningApp } from '../src/app.js';

export interface TestServer {
  base: string;
  running: RunningApp;
  dataDir: string;
  logs: string[];
  stop(): Promise<void>;
}

/**
 * Webhook endpoints in these tests listen on loopback, which the service refuses by default
 * (`NEXO_WEBHOOK_PRIVATE_ADDRESSES=deny`): the harness allows them unless a test says otherwise.
 */
export async function startServer(env: Record<string, string> = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nexo-api-'));
  const config = loadConfig({
    NEXO_DATA_DIR: dataDir,
    PORT: '0',
    HOST: '127.0.0.1',
    NEXO_SIGNUPS_PER_HOUR: '100000',
    NEXO_WEBHOOK_PRIVATE_ADDRESSES: 'allow',
    ...env,
  });
  const logs: string[] = [];
  const sink = linesInto(logs);
  const running = await createApp(config, createLogger({ level: env.LOG_LEVEL ?? 'info', destination: sink }));
  await running.app.listen({ port: 0, host: '127.0.0.1' });
  const address = running.app.getHttpServer().address() as { port: number };
  return {
    base: `http://127.0.0.1:${address.port}`,
    running,
    dataDir,
    logs,
    async stop() {
      await running.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function signup(base: string, name = 'test exchange'): Promise<{ account_id: string; api_key: string }> {
  const res = await fetch(`${base}/api/v1/signup`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name }) });
  if (res.status !== 201) throw new Error(`signup failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as { account_id: string; api_key: string };
}

export function post(base: string, path: string, key: string | undefined, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return send('POST', base, path, key, body, headers);
}

export function put(base: string, path: string, key: string | undefined, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return send('PUT', base, path, key, body, headers);
}

function send(method: 'POST' | 'PUT', base: string, path: string, key: string | undefined, body: unknown, headers: Record<string, string>): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export function get(base: string, path: string, key?: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}${path}`, { headers: { ...(key ? { Authorization: `Bearer ${key}` } : {}), ...headers } });
}

let phoneSeq = 0;
/** A fresh valid Vinaphone number per call, so the per-phone limit never interferes by accident. */
export function freshPhone(prefix = '091'): string {
  phoneSeq += 1;
  return `${prefix}${String(1_000_000 + ((phoneSeq * 7919) % 9_000_000)).padStart(7, '0')}`;
}
