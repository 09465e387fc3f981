/**
 * Crash tests run real child processes, which need compiled JavaScript. This
 * builds the tree (tsc is incremental: an up-to-date tree costs seconds) and
 * then checks that the outputs a child needs are newer than their sources.
 * tsc still emits when files elsewhere in the repo fail to typecheck, so its
 * exit status is not the test here; the freshness of these outputs is.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../../../..');
let built = false;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return sources(p);
    return d.name.endsWith('.ts') && !d.name.endsWith('.spec.ts') ? [p] : [];
  });
}

/**
 * Source files (repo-relative) by the SHA-256 of the text tsc last compiled, from its
 * incremental build record. tsc does not re-emit a file whose text it has already compiled
 * (a `git checkout` or `touch` leaves the output older than the source but still current).
 */
function compiledVersions(): Map<string, string> {
  try {
    const info = JSON.parse(readFileSync(join(repoRoot, 'dist/.tsbuildinfo'), 'utf8')) as { fileNames: string[]; fileInfos: ({ version?: string } | string)[] };
    return new Map(info.fileNames.map((name, i) => [relative(repoRoot, join(repoRoot, 'dist', name)), (info.fileInfos[i] as { version?: string })?.version ?? String(info.fileInfos[i])]));
  } catch {
    return new Map();
  }
}

/**
 * Builds once per test file. `dirs` are this work's source folders, whose
 * outputs must be fresh; other libs are edited by others at the same time,
 * so theirs only need to exist (a child importing them fails loudly if not).
 */
export function ensureBuilt(dirs: string[]): void {
  if (!built && process.env.NEXO_SKIP_BUILD !== '1') {
    try {
      execFileSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', join(repoRoot, 'tsconfig.build.json')], {
        cwd: repoRoot,
        stdio: 'pipe',
      });
    } catch {
      // Type errors in files other than ours still emit; freshness is checked below.
    }
    built = true;
  }
  let versions: Map<string, string> | undefined;
  for (const dir of dirs) {
    for (const src of sources(join(repoRoot, dir))) {
      const out = join(repoRoot, 'dist', relative(repoRoot, src)).replace(/\.ts$/, '.js');
      let outTime = 0;
      try {
        outTime = statSync(out).mtimeMs;
      } catch {
        throw new Error(`${relative(repoRoot, out)} is missing: the build did not emit it`);
      }
      if (outTime >= statSync(src).mtimeMs) continue;
      versions ??= compiledVersions();
      const current = createHash('sha256').update(readFileSync(src)).digest('hex');
      if (versions.get(relative(repoRoot, src)) !== current) throw new Error(`${relative(repoRoot, out)} is older than its source: the build did not emit it`);
    }
  }
}
