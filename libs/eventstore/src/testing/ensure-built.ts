/**
 * Crash tests run real child processes, which need compiled JavaScript (the
 * NestJS stack is ESM-only and ts-node cannot load it). `npm test` builds
 * first; this makes a lone `jest <file>` run safe too. tsc is incremental, so
 * an up-to-date tree costs a couple of seconds.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

let built = false;
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../../../..');

export function ensureBuilt(): void {
  if (built || process.env.NEXO_SKIP_BUILD === '1') return;
  execFileSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', join(repoRoot, 'tsconfig.build.json')], {
    cwd: repoRoot,
    stdio: 'inherit',
  });
  built = true;
}
