/**
 * The URL of a worker thread's script next to the calling module. Compiled,
 * it is the sibling `.js`; under ts-jest the sources run as `.ts` from the
 * repository, and a thread can only run the build's copy (`npm test` builds
 * first), found at the same path under `dist/`.
 */
export function threadScriptUrl(callerUrl: string, script: string): URL {
  if (!callerUrl.endsWith('.ts')) return new URL(script, callerUrl);
  const at = Math.max(callerUrl.lastIndexOf('/libs/'), callerUrl.lastIndexOf('/apps/'));
  if (at < 0) throw new Error(`cannot locate the compiled copy of ${callerUrl}`);
  return new URL(script, `${callerUrl.slice(0, at)}/dist${callerUrl.slice(at)}`);
}
