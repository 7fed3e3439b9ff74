// The WebAssembly core behind the RawCore interface.

import { FILL_BATCH_MAX } from '../core/constants.js';
import type { CoreConfig, RawCore } from './core.js';
import { type WasmCoreExports, instantiateCore } from './wasm-loader.js';

export class WasmCore implements RawCore {
  private readonly wasm: WasmCoreExports;
  /** The module's static output region. Its memory is fixed at one page, so this view never detaches. */
  private readonly out: Uint8Array;
  // A view of the region's first `viewCount` ids: callers ask for the same count again and
  // again, and making a new subarray per call costs as much as copying 1 KiB.
  private viewCount = 0;
  private view: Uint8Array = new Uint8Array(0);

  constructor(cfg: CoreConfig) {
    this.wasm = instantiateCore();
    this.wasm.configure(
      cfg.epoch,
      cfg.tickMs,
      cfg.timeBits,
      cfg.nodeBits,
      cfg.sequenceBits,
      cfg.nodeId,
      cfg.stripeFirst,
      cfg.stripeLast,
      cfg.leadTicks,
    );
    this.out = new Uint8Array(this.wasm.memory.buffer, this.wasm.outputPointer(), FILL_BATCH_MAX * 8);
  }

  next(now: number): bigint {
    return this.wasm.next(now);
  }

  fill(now: number, target: Uint8Array, offset: number, count: number): number {
    // The module writes at most FILL_BATCH_MAX ids per call; continue in further calls under
    // the same clock reading, which is exactly what one larger call would have produced.
    let total = 0;
    while (total < count) {
      const want = Math.min(count - total, FILL_BATCH_MAX);
      const got = this.wasm.fill(now, want);
      if (got < 0) return total > 0 ? total : got;
      if (got !== this.viewCount) {
        this.viewCount = got;
        this.view = this.out.subarray(0, got * 8);
      }
      target.set(this.view, offset + total * 8);
      total += got;
      if (got < want) break;
    }
    return total;
  }

  fillView(now: number, count: number): Uint8Array | number {
    const got = this.wasm.fill(now, count);
    if (got < 0) return got;
    if (got !== this.viewCount) {
      this.viewCount = got;
      this.view = this.out.subarray(0, got * 8);
    }
    return this.view;
  }

  retryAfterMs(): number {
    return this.wasm.getRetryAfterMs();
  }

  setLimitTick(tick: number): void {
    this.wasm.setLimitTick(tick);
  }

  resumeAfterTick(tick: number): void {
    this.wasm.resumeAfterTick(tick);
  }

  lastTick(): number {
    return this.wasm.getLastTick();
  }

  nextSequence(): number {
    return this.wasm.getNextSequence();
  }

  /** Size of the module's memory in bytes (it never grows). */
  memoryBytes(): number {
    return this.wasm.memory.buffer.byteLength;
  }
}
