import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Crash tests spawn child processes and the emulated device does real file I/O:
    // two workers suit the 2-core CI machine.
    pool: 'forks',
    maxWorkers: 2,
  },
});
