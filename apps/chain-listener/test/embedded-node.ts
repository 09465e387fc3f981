/**
 * A real embedded NEXO ROUTE (API, workers, chain listener, deposit consumer)
 * on an ephemeral loopback port, on a data dir that outlives it so a test can
 * restart it; and the built ledger CLI run against its file.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLogger, linesInto } from '#observability';
import { createApp, type RunningApp } from '../../api/src/app.js';
import { loadConfig } from '../../api/src/config.js';
import { repoRoot } from '../../../libs/projections/src/testing/ensure-built.js';

export interface EmbeddedNode {
  base: string;
  running: RunningApp;
  dataDir: string;
  dbFile: string;
  logs: string[];
  /** Stops the process's work and keeps the data dir. */
  stop(): Promise<void>;
}

export const newDataDir = (): string => mkdtempSync(join(tmpdir(), 'nexo-chain-e2e-'));
export const removeDataDir = (dir: string): void => rmSync(dir, { recursive: true, force: true });

export async function startEmbedded(dataDir: string, env: Record<string, string>): Promise<EmbeddedNode> {
  const config = loadConfig({ NEXO_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', NEXO_SIGNUPS_PER_HOUR: '100000', LOG_LEVEL: 'debug', ...env });
  const logs: string[] = [];
  const sink = linesInto(logs);
  const running = await createApp(config, createLogger({ level: config.logLevel, destination: sink }));
  await running.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = running.app.getHttpServer().address() as { port: number };
  return { base: `http://127.0.0.1:${port}`, running, dataDir, dbFile: config.dbFile, logs, stop: () => running.close() };
}

const run = promisify(execFile);

/** `node dist/apps/ledger/src/main.js verify --db <file>`, as finance runs it. */
export async function ledgerVerify(dbFile: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(repoRoot, 'dist/apps/ledger/src/main.js'), 'verify', '--db', dbFile], { cwd: repoRoot });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
