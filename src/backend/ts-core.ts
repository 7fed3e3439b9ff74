// The pure-TypeScript core: the step of ts-step.ts bound to one state.

import { FILL_BATCH_MAX } from '../core/constants.js';
import type { CoreConfig, RawCore } from './core.js';
import { type Packing, type StepState, idFromHalves, initialState, packing, stepFill, stepNext, tickHigh, tickLow } from './ts-step.js';

export class TsCore implements RawCore {
  private readonly cfg: CoreConfig;
  private readonly packing: Packing;
  private readonly state: StepState;
  // fill() is usually called with the same buffer again and again (a reply buffer).
  private viewOf: Uint8Array | undefined;
  private view: DataView | undefined;
  // The halves of the tick part of the last id: most ids share their tick with the one before.
  private cachedTick = -1;
  private cachedHigh = 0;
  private cachedLow = 0;
  // fillView's output, like the WASM module's static region.
  private readonly scratch = new Uint8Array(FILL_BATCH_MAX * 8);
  private scratchCount = 0;
  private scratchView = new Uint8Array(0);

  constructor(cfg: CoreConfig) {
    this.cfg = cfg;
    this.packing = packing(cfg);
    this.state = initialState(cfg);
  }

  next(now: number): bigint {
    const seq = stepNext(this.cfg, this.state, now);
    if (seq < 0) return BigInt(seq);
    const tick = this.state.lastTick;
    if (tick !== this.cachedTick) {
      this.cachedTick = tick;
      this.cachedHigh = tickHigh(this.packing, tick) + this.packing.nodeHigh;
      this.cachedLow = tickLow(this.packing, tick) + this.packing.nodeLow;
    }
    return idFromHalves(this.cachedHigh, this.cachedLow + seq);
  }

  fill(now: number, target: Uint8Array, offset: number, count: number): number {
    if (this.viewOf !== target) {
      this.viewOf = target;
      this.view = new DataView(target.buffer, target.byteOffset, target.byteLength);
    }
    return stepFill(this.cfg, this.packing, this.state, now, this.view!, offset, count);
  }

  fillView(now: number, count: number): Uint8Array | number {
    const got = this.fill(now, this.scratch, 0, count);
    if (got < 0) return got;
    if (got !== this.scratchCount) {
      this.scratchCount = got;
      this.scratchView = this.scratch.subarray(0, got * 8);
    }
    return this.scratchView;
  }

  retryAfterMs(): number {
    return this.state.retryAfterMs;
  }

  setLimitTick(tick: number): void {
    this.state.limitTick = tick;
  }

  resumeAfterTick(tick: number): void {
    if (tick >= this.state.lastTick) {
      this.state.lastTick = tick;
      this.state.nextSeq = this.cfg.stripeLast + 1;
    }
  }

  lastTick(): number {
    return this.state.lastTick;
  }

  nextSequence(): number {
    return this.state.nextSeq;
  }
}
