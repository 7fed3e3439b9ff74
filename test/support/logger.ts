// A logger for tests that say nothing: the node's and the server's lines would only bury
// vitest's report. Tests that check what is logged spread it and replace a level.

import type { NodeLogger } from '../../src/index.js';

export const silent: NodeLogger = { info() {}, warn() {}, error() {} };
