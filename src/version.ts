// The package's version, read from its package.json at run time: one source for
// `hailstone --version` and what a fleet member advertises, so a release cannot ship
// with a stale copy. Two levels up from src/ (sources) and from dist/ (built) alike.

import { readFileSync } from 'node:fs';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
