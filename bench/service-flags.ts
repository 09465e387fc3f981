/**
 * The node flags `npm start` runs the service with. package.json is their one
 * home; benches that start the service themselves (to measure its own
 * process) read them from there, so they measure what a user runs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function serviceNodeFlags(root: string): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const m = /\bnode((?: --\S+)*) dist\/apps\/api\/src\/main\.js/.exec(pkg.scripts.start);
  if (!m) throw new Error('the start script of package.json does not run dist/apps/api/src/main.js');
  return m[1].split(' ').filter(Boolean);
}
