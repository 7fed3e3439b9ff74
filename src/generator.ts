// The generator API: one object shape over either core (WebAssembly or TypeScript).
//
// It reads the clock once per call, hands the reading to the core and turns a refusal
// into a HailstoneError. It never busy-waits and never blocks: when no id may be issued
// it throws at once with a code and, where waiting helps, retryAfterMs.

import {
  STATUS_CLOCK_BEHIND,
  STATUS_CLOCK_BEFORE_EPOCH,
  STATUS_CLOCK_INVALID,
  STATUS_LAYOUT_EXPIRED,
  STATUS_LIMIT_REACHED,
  STATUS_CLOSED,
  MAX_CLOCK_MS,
  FILL_BATCH_MAX,
} from './core/constants.js';
import { type CoreConfig, type RawCore, coreConfig } from './backend/core.js';
import { peekNext } from './backend/ts-step.js';
import { TsCore } from './backend/ts-core.js';
import { WasmCore } from './backend/wasm-core.js';
import { HailstoneError, InvalidArgumentError, checkInteger, describe } from './errors.js';
import {
  DEFAULT_LAYOUT,
  type Layout,
  type WorkerOptions,
  type WorkerStripe,
  tickOf,
  timestampOf,
  workerStripe,
} from './layout.js';

export type Backend = 'wasm' | 'ts';

export interface GeneratorOptions {
  /** This node's id: 0..layout.maxNodeId. Two live generators must never share a node id and worker. */
  nodeId: number;
  /** 'wasm' (default) or 'ts'. Both issue exactly the same ids. */
  backend?: Backend;
  /** Bit layout; default 41-bit ms time since 2025-01-01, 10-bit node, 12-bit sequence. */
  layout?: Layout;
  /** This process's stripe of the node's sequence space. Default { index: 0, count: 1 }. */
  worker?: WorkerOptions;
  /** ms since the Unix epoch. Default Date.now. */
  clock?: () => number;
  /** How far logical time may run ahead of the clock, in ms. Default 2000. */
  maxLeadMs?: number;
  /** Never issue an id with a timestamp after this (ms since the Unix epoch). Default: no limit. */
  limit?: number;
}

export const DEFAULT_MAX_LEAD_MS = 2000;
/** The largest maxLeadMs accepted: one day. Beyond it a clock fault would go unnoticed for too long. */
export const MAX_LEAD_MS_LIMIT = 86_400_000;

export interface Generator {
  readonly backend: Backend;
  readonly layout: Layout;
  readonly nodeId: number;
  readonly worker: WorkerStripe;
  readonly maxLeadMs: number;
  /** The next id. Throws HailstoneError when no id may be issued now. */
  nextId(): bigint;
  /** The next id as a decimal string (JSON-safe). */
  nextIdString(): string;
  /**
   * Writes up to `count` ids into `buffer` from `offset` as big-endian unsigned 64-bit
   * integers, under one clock reading, and returns how many it wrote (at least 1). Fewer
   * than `count` when the tick's sequence and the lead allow no more right now. Throws
   * HailstoneError when not one id may be issued.
   */
  fill(buffer: Uint8Array, offset?: number, count?: number): number;
  /**
   * fill() for hot paths that must not pay for exceptions: returns how many ids it wrote,
   * or a negative status when none may be issued now (see refusalOf and retryAfterMs).
   * Bad arguments still throw InvalidArgumentError.
   */
  tryFill(buffer: Uint8Array, offset?: number, count?: number): number;
  /**
   * Up to `count` ids (1..1024, default 1024) under one clock reading, big-endian, in a view
   * of the generator's own output buffer: no copy. The view is valid only until the next
   * call to this generator — read it (readId/readIds) or copy it first. Throws
   * HailstoneError when not one id may be issued.
   */
  fillView(count?: number): Uint8Array;
  /** fillView() returning a negative status instead of throwing. */
  tryFillView(count?: number): Uint8Array | number;
  /** ms to wait after tryFill returned `status`; undefined when waiting cannot help. */
  retryAfterMs(status: number): number | undefined;
  /** The HailstoneError for a status tryFill returned. */
  refusalOf(status: number): HailstoneError;
  /** Never issue an id with a timestamp after `timestampMs`. May move either way. */
  setLimit(timestampMs: number): void;
  /** Never issue an id with a timestamp at or before `timestampMs`. Only ever moves forward. */
  resumeAfter(timestampMs: number): void;
  /** The timestamp of the last id issued (or of the floor set by resumeAfter); undefined before any. */
  lastTimestamp(): number | undefined;
  /** What the generator has seen so far, for metrics. */
  counters(): GeneratorCounters;
  /**
   * Whether an id could be issued now, without issuing one: status 0, or the status a call
   * would refuse with and, where waiting helps, the ms to wait. Reads the clock once.
   */
  peek(): { status: number; retryAfterMs: number | undefined };
}

export interface GeneratorCounters {
  /** Episodes of the clock reading earlier than a reading before it. */
  clockRegressions: number;
  /** CLOCK_BEHIND refusals while the clock was not behind its own past: demand beyond the layout's rate and the lead. */
  sequenceExhaustions: number;
  /** Refusals of every kind. */
  refusals: number;
}

function checkTimestamp(argument: string, value: unknown): number {
  if (typeof value !== 'number' || Number.isNaN(value) || (Number.isFinite(value) && Math.abs(value) > MAX_CLOCK_MS)) {
    throw new InvalidArgumentError(argument, `must be ms since the Unix epoch (or ±Infinity), got ${describe(value)}`);
  }
  return value;
}

class IdGenerator implements Generator {
  readonly backend: Backend;
  readonly layout: Layout;
  readonly nodeId: number;
  readonly worker: WorkerStripe;
  readonly maxLeadMs: number;
  private readonly core: RawCore;
  private readonly cfg: CoreConfig;
  private limitTick = Infinity;
  private readonly clock: () => number;
  /** The clock reading of the last refusal, for its message. */
  private refusedAt = 0;
  private highestNow = -Infinity;
  private regressing = false;
  private readonly seen: GeneratorCounters = { clockRegressions: 0, sequenceExhaustions: 0, refusals: 0 };

  constructor(options: GeneratorOptions) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('options', `must be an object with at least a nodeId, got ${describe(options)}`);
    }
    const backend = options.backend ?? 'wasm';
    if (backend !== 'wasm' && backend !== 'ts') {
      throw new InvalidArgumentError('backend', `must be 'wasm' or 'ts', got ${describe(backend)}`);
    }
    this.backend = backend;
    this.layout = options.layout ?? DEFAULT_LAYOUT;
    this.nodeId = checkInteger('nodeId', options.nodeId, 0, this.layout.maxNodeId);
    this.worker = workerStripe(this.layout, options.worker);
    this.maxLeadMs = checkInteger('maxLeadMs', options.maxLeadMs ?? DEFAULT_MAX_LEAD_MS, 0, MAX_LEAD_MS_LIMIT);
    const clock = options.clock ?? Date.now;
    if (typeof clock !== 'function') {
      throw new InvalidArgumentError('clock', `must be a function returning ms since the Unix epoch, got ${describe(clock)}`);
    }
    this.clock = clock;
    const cfg: CoreConfig = coreConfig(this.layout, this.nodeId, this.worker, this.maxLeadMs);
    this.cfg = cfg;
    this.core = backend === 'wasm' ? new WasmCore(cfg) : new TsCore(cfg);
    if (options.limit !== undefined) this.setLimit(options.limit);
  }

  nextId(): bigint {
    const now = this.read();
    const id = this.core.next(now);
    if (id < 0n) {
      this.refused(Number(id), now);
      throw this.refusalOf(Number(id));
    }
    return id;
  }

  nextIdString(): string {
    return this.nextId().toString();
  }

  fill(buffer: Uint8Array, offset = 0, count?: number): number {
    const written = this.tryFill(buffer, offset, count);
    if (written < 0) throw this.refusalOf(written);
    return written;
  }

  tryFill(buffer: Uint8Array, offset = 0, count?: number): number {
    if (!(buffer instanceof Uint8Array)) {
      throw new InvalidArgumentError('buffer', `must be a Uint8Array or Buffer, got ${describe(buffer)}`);
    }
    const room = Math.floor((buffer.length - checkInteger('offset', offset, 0, buffer.length)) / 8);
    if (room < 1) {
      throw new InvalidArgumentError('buffer', `has no room for one 8-byte id at offset ${offset} (length ${buffer.length})`);
    }
    const n = count === undefined ? room : checkInteger('count', count, 1, room);
    const now = this.read();
    const written = this.core.fill(now, buffer, offset, n);
    if (written < 0) this.refused(written, now);
    return written;
  }

  fillView(count?: number): Uint8Array {
    const view = this.tryFillView(count);
    if (typeof view === 'number') throw this.refusalOf(view);
    return view;
  }

  tryFillView(count = FILL_BATCH_MAX): Uint8Array | number {
    if (count !== FILL_BATCH_MAX) checkInteger('count', count, 1, FILL_BATCH_MAX);
    const now = this.read();
    const view = this.core.fillView(now, count);
    if (typeof view === 'number') this.refused(view, now);
    return view;
  }

  counters(): GeneratorCounters {
    return { ...this.seen };
  }

  peek(): { status: number; retryAfterMs: number | undefined } {
    const state = { lastTick: this.core.lastTick(), nextSeq: this.core.nextSequence(), limitTick: this.limitTick, retryAfterMs: 0 };
    const { status, retryAfterMs } = peekNext(this.cfg, state, this.clock());
    if (status === 0) return { status, retryAfterMs: undefined };
    return { status, retryAfterMs: status === STATUS_CLOCK_BEHIND ? retryAfterMs : this.retryAfterMs(status) };
  }

  /** Reads the clock, noting when it reads earlier than it did before (one comparison). */
  private read(): number {
    const now = this.clock();
    if (now < this.highestNow) {
      if (!this.regressing) {
        this.regressing = true;
        this.seen.clockRegressions++;
      }
    } else {
      this.highestNow = now;
      this.regressing = false;
    }
    return now;
  }

  private refused(status: number, now: number): void {
    this.refusedAt = now;
    this.seen.refusals++;
    if (status === STATUS_CLOCK_BEHIND && !this.regressing) this.seen.sequenceExhaustions++;
  }

  retryAfterMs(status: number): number | undefined {
    if (status === STATUS_CLOCK_BEHIND) return this.core.retryAfterMs();
    if (status === STATUS_LIMIT_REACHED) return Math.max(1, this.layout.tickMs);
    return undefined;
  }

  setLimit(timestampMs: number): void {
    const ms = checkTimestamp('limit', timestampMs);
    this.limitTick = ms === Infinity ? Infinity : tickOf(this.layout, ms);
    this.core.setLimitTick(this.limitTick);
  }

  resumeAfter(timestampMs: number): void {
    const ms = checkTimestamp('timestampMs', timestampMs);
    if (!Number.isFinite(ms)) throw new InvalidArgumentError('timestampMs', 'must be finite');
    this.core.resumeAfterTick(tickOf(this.layout, ms));
  }

  lastTimestamp(): number | undefined {
    const tick = this.core.lastTick();
    return tick < 0 ? undefined : timestampOf(this.layout, tick);
  }

  refusalOf(status: number): HailstoneError {
    const now = this.refusedAt;
    switch (status) {
      case STATUS_CLOCK_BEHIND: {
        const retryAfterMs = this.core.retryAfterMs();
        return new HailstoneError(
          'CLOCK_BEHIND',
          `logical time would run more than maxLeadMs (${this.maxLeadMs} ms) ahead of the clock ` +
            `(the clock stepped back, or ids were asked for faster than ${this.layout.idsPerTick} per ` +
            `${this.layout.tickMs} ms); retry in ${retryAfterMs} ms`,
          { retryAfterMs },
        );
      }
      case STATUS_LIMIT_REACHED:
        return new HailstoneError(
          'LIMIT_REACHED',
          'the next id would pass the reserved time limit; the reservation is being extended, retry shortly',
          { retryAfterMs: this.retryAfterMs(status)! },
        );
      case STATUS_CLOCK_BEFORE_EPOCH:
        return new HailstoneError(
          'CLOCK_BEFORE_EPOCH',
          `the clock reads ${now} (${new Date(now).toISOString()}), before the layout's epoch ` +
            `${new Date(this.layout.epoch).toISOString()}: fix the system clock`,
        );
      case STATUS_LAYOUT_EXPIRED:
        return new HailstoneError(
          'LAYOUT_EXPIRED',
          `time has run past the end of the layout's ${this.layout.timeBits}-bit time field ` +
            `(${new Date(this.layout.expiresAt).toISOString()}): no more ids fit it; move to a new layout or epoch`,
        );
      case STATUS_CLOCK_INVALID:
        return new HailstoneError(
          'CLOCK_INVALID',
          `the clock returned ${describe(now)}; it must return ms since the Unix epoch as a finite number`,
        );
      case STATUS_CLOSED:
        return new HailstoneError('CLOSED', 'the node is closed; open it again with openNode');
      default:
        throw new Error(`hailstone: unknown core status ${status}`);
    }
  }
}

/** Creates an id generator. See GeneratorOptions. */
export function createGenerator(options: GeneratorOptions): Generator {
  return new IdGenerator(options);
}
