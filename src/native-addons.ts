// Where the native addons built by `npm install` (native/build/Release) are, found from
// src/ (tests, tsx) or dist/ (the built package). An environment variable may point
// elsewhere — or at nothing, to run without the addon. Where an addon is missing, the
// reason is the one the install step recorded (native/build.mjs), so the log at run time
// says what the install said.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's native/ directory (the one holding build.mjs), if it ships one. */
function nativeDir(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'native', 'build.mjs'))) return join(dir, 'native');
    dir = dirname(dir);
  }
  return undefined;
}

export function findAddon(fileName: string, overrideVariable: string): string | undefined {
  const override = process.env[overrideVariable];
  if (override !== undefined && override !== '') return override;
  const native = nativeDir();
  if (native === undefined) return undefined;
  const candidate = join(native, 'build', 'Release', fileName);
  return existsSync(candidate) ? candidate : undefined;
}

/** Why `fileName` is not there to load, in the words of the install step that should have built it. */
export function missingAddonReason(fileName: string): string {
  const native = nativeDir();
  if (native === undefined) return 'this copy of hailstone ships no native/ directory';
  let status: { built?: boolean; reason?: string } | undefined;
  try {
    status = JSON.parse(readFileSync(join(native, 'build', 'status.json'), 'utf8')) as typeof status;
  } catch {
    status = undefined;
  }
  if (status === undefined) {
    return "the addons were never built: hailstone's install script did not run (npm's allowScripts, or --ignore-scripts); approve it (`npm install-scripts approve hailstone`) and run `npm rebuild hailstone`";
  }
  if (status.built === false && typeof status.reason === 'string') return `the addons were not built at install: ${status.reason}`;
  return `the addons were built but ${join(native, 'build', 'Release', fileName)} is missing: run \`npm rebuild hailstone\``;
}
