// Loaded before every test file (vitest setupFiles): whatever a test started and did not
// stop — because it failed, timed out or forgot — is killed by process group afterwards.

import { afterAll, afterEach } from 'vitest';
import { killAllChildren } from './child.js';

afterEach(async () => {
  await killAllChildren('test');
});

afterAll(async () => {
  await killAllChildren();
});
