// Preloaded into a benchmarked server (node --expose-gc --require bench/gc-on-signal.cjs):
// SIGUSR2 runs one full garbage collection, so bench:http can give each server the history
// of a process that collected between its first answer and its load.
process.on('SIGUSR2', () => {
  if (typeof globalThis.gc === 'function') globalThis.gc();
});
