// Loads the WebAssembly core synchronously and types its exports.
//
// The module is compiled once per process; every generator gets an instance of its own,
// because an instance's globals are one generator's state.

import { readFileSync } from 'node:fs';

// Node has WebAssembly as a global, but @types/node for Node 20 does not type it; these are
// the few members used here (kept off the public declarations on purpose).
interface WasmModule {
  readonly __brand: 'WebAssembly.Module';
}
interface WasmGlobalApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { readonly exports: unknown };
}
const WebAssemblyApi = (globalThis as unknown as { WebAssembly: WasmGlobalApi }).WebAssembly;

/** The raw exports of assembly/index.ts. Times are f64 ms or ticks; next() returns an i64. */
export interface WasmCoreExports {
  readonly memory: { readonly buffer: ArrayBuffer };
  configure(
    epochMs: number,
    tickMs: number,
    timeBits: number,
    nodeBits: number,
    sequenceBits: number,
    nodeId: number,
    stripeFirst: number,
    stripeLast: number,
    leadTicks: number,
  ): void;
  setLimitTick(tick: number): void;
  resumeAfterTick(tick: number): void;
  getLastTick(): number;
  getNextSequence(): number;
  getRetryAfterMs(): number;
  outputPointer(): number;
  next(now: number): bigint;
  fill(now: number, count: number): number;
}

/** Where `npm run build:wasm` writes the module, relative to this file in src/ and in dist/. */
export const WASM_URL = new URL('../../build/hailstone.wasm', import.meta.url);

let compiled: WasmModule | undefined;

function wasmModule(): WasmModule {
  if (compiled === undefined) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(WASM_URL);
    } catch (cause) {
      throw new Error(
        `hailstone: cannot read the WebAssembly core at ${WASM_URL.pathname}; run \`npm run build:wasm\`, ` +
          `or use backend: 'ts'`,
        { cause },
      );
    }
    compiled = new WebAssemblyApi.Module(bytes);
  }
  return compiled;
}

/** A fresh, unconfigured instance of the core. The module imports nothing. */
export function instantiateCore(): WasmCoreExports {
  return new WebAssemblyApi.Instance(wasmModule(), {}).exports as WasmCoreExports;
}
