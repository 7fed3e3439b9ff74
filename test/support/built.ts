// vitest globalSetup: the tests run the hailstone command as built (dist/, build/), as the
// package's bin does. When a source under src/ or assembly/ is newer than the build — an edit
// since the last `npm run build` — it builds first, once per run, and says so.

import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function newestUnder(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestUnder(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

export default function setup(): void {
  const built = Math.min(mtimeOf(join(ROOT, 'dist/cli/main.js')), mtimeOf(join(ROOT, 'build/hailstone.wasm')));
  const sources = Math.max(newestUnder(join(ROOT, 'src')), newestUnder(join(ROOT, 'assembly')));
  if (built >= sources) return;
  process.stderr.write('hailstone: the sources are newer than dist/ and build/: npm run build\n');
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
}
