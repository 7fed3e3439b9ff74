import { configDefaults, defineConfig } from 'vitest/config';
import { LongestFirstSequencer } from './test/support/sequencer.js';

// The process-level fleet chaos run is the long version of what the fleet simulator checks in
// virtual time (test/fleet.sim.test.ts): `npm run test:fleet-chaos` runs it, not `npm test`.
const longRunsOnly = process.env.HAILSTONE_FLEET_CHAOS_EVENTS === undefined ? ['test/fleet.chaos.test.ts'] : [];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, ...longRunsOnly],
    // Kills every child process a test left running, by process group, even when it failed.
    setupFiles: ['test/support/cleanup.ts'],
    // The hailstone command runs as built: built first when a source is newer.
    globalSetup: ['test/support/built.ts'],
    // Child processes and sockets: run files in separate processes, three at a time. Most
    // process-level files spend their time waiting (leases, timers, children starting), so on
    // this 2-core machine a third file fills the idle CPU: the suite used 1.4 of 2 cores with
    // two at a time and 1.7 with three, 388 s against 324 s of wall time.
    pool: 'forks',
    maxWorkers: 3,
    sequence: { sequencer: LongestFirstSequencer },
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
