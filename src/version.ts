// The package's version, read from package.json when the process starts, so that
// /metrics (hailstone_build_info) and the fleet's claim keys always say what is running.
// src/ and dist/ both sit one level below package.json.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const VERSION: string = (require('../package.json') as { version: string }).version;
