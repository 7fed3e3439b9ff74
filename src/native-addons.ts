// Where the native addons built by `npm install` (native/build/Release) are, found from
// src/ (tests, tsx) or dist/ (the built package). An environment variable may point
// elsewhere — or at nothing, to run without the addon.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function findAddon(fileName: string, overrideVariable: string): string | undefined {
  const override = process.env[overrideVariable];
  if (override !== undefined && override !== '') return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'native', 'build', 'Release', fileName);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}
