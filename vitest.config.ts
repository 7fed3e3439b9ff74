import { configDefaults, defineConfig } from 'vitest/config';

// The process-level fleet chaos run is the long version of what the fleet simulator checks in
// virtual time (test/fleet.sim.test.ts): `npm run test:fleet-chaos` runs it, not `npm test`.
const longRunsOnly = process.env.HAILSTONE_FLEET_CHAOS_EVENTS === undefined ? ['test/fleet.chaos.test.ts'] : [];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, ...longRunsOnly],
    // Kills every child process a test left running, by process group, even when it failed.
    setupFiles: ['test/support/cleanup.ts'],
    // Child processes and sockets: run files in separate processes, two at a time (2 cores).
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
