// The backends every contract test runs against.
import type { Backend } from '../../src/index.js';

export const BACKENDS: readonly Backend[] = ['wasm', 'ts'];
