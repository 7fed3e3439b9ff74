// A test that needs something from the machine (etcd, strace, unshare, the native addons)
// skips where it is missing on a developer's machine — but under CI (CI=true), where
// .ci/run installs every prerequisite, a missing one fails with its name instead of
// leaving its guarantee silently unproven.

import { it } from 'vitest';

export function requirePrerequisite(available: boolean, what: string): void {
  if (available || process.env.CI !== 'true') return;
  it(`has its prerequisite: ${what}`, () => {
    throw new Error(`missing under CI: ${what}. .ci/run installs it; the tests that need it would otherwise be skipped`);
  });
}
