import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Kills every child process a test left running, by process group, even when it failed.
    setupFiles: ['test/support/cleanup.ts'],
    // Child processes and sockets: run files in separate processes, two at a time (2 cores).
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
