// How available each server stayed, as its clients saw it: load on every server that keeps
// every id of every reply, and per server the longest time without an OK reply — between
// two consecutive successful replies, and from the start of the measured window to the
// first, and from the last to the stop. A fleet server that hangs on one etcd member, or
// whose workers die and restart, shows up here as a gap even when it issues no duplicate.
//
// Bounded: at most `maxCalls` requests per server and at most `maxMs` in all, after which
// the loops stop by themselves (a test that forgets stop() still ends its load).

import { type Client, HailstoneError, createClient } from '../../src/index.js';
import { sleep } from './child.js';

export interface ServerAvailability {
  name: string;
  address: string;
  /** Every id of every OK reply, in the order they arrived. */
  ids: bigint[];
  okReplies: number;
  /** Refused calls by error code (UNAVAILABLE, TIMEOUT, UNREACHABLE, ...). */
  refusals: Record<string, number>;
  /** The longest time without an OK reply, in ms. */
  longestGapMs: number;
  /** The fraction of whole seconds of the window with at least one OK reply (0..1). */
  availability: number;
  /** The window's whole seconds, and those without an OK reply. */
  seconds: number;
  secondsWithoutOk: number;
  /** When that gap began and ended, in ms from the window's start. */
  longestGapFromMs: number;
  longestGapToMs: number;
  /**
   * The longest time one client (one socket) went without an OK reply. With --workers the
   * kernel ties each socket to one worker, so a worker that stalls shows here even while
   * the others keep the server's own gap short.
   */
  worstClientGapMs: number;
  /** Every gap longer than 100 ms, as [from, to] in ms from the window's start, in order. */
  gaps: [number, number][];
}

interface Tracked {
  name: string;
  address: string;
  ids: bigint[];
  okReplies: number;
  refusals: Map<string, number>;
  lastOkAt: number;
  longestGapMs: number;
  longestGapFromMs: number;
  longestGapToMs: number;
  /** Per client: its last OK reply, and its longest gap. */
  clientLastOkAt: number[];
  worstClientGapMs: number;
  gaps: [number, number][];
  /** Seconds of the window (counted from its start) that had an OK reply. */
  okSeconds: Set<number>;
  /** When its load began (a server added later is measured from then). */
  addedAt: number;
  calls: number;
  clients: Client[];
}

export interface AvailabilityOptions {
  /** Clients (sockets) per server. Default 2. */
  concurrency?: number;
  /** Ids per call. Default 10. */
  batch?: number;
  /** Pause between one client's calls. Default 1 ms: leaves the 2 cores to the servers and etcd. */
  pauseMs?: number;
  /** Calls per server at most. */
  maxCalls?: number;
  /** The load stops by itself after this long. Default 120 s. */
  maxMs?: number;
  /** Each call's deadline. Default 300 ms. */
  deadlineMs?: number;
}

export class Availability {
  private readonly servers: Tracked[] = [];
  private readonly loops: Promise<void>[] = [];
  private windowStart = Date.now();
  private stoppedAt: number | undefined;
  private readonly marks: { at: number; what: string }[] = [];
  private readonly timer: NodeJS.Timeout;

  /** Starts load on each server (name → "host:port"). */
  constructor(
    servers: Record<string, string>,
    private readonly options: AvailabilityOptions = {},
  ) {
    for (const [name, address] of Object.entries(servers)) this.add(name, address);
    this.timer = setTimeout(() => this.halt(), options.maxMs ?? 120_000);
    this.timer.unref();
  }

  /**
   * Puts load on one more server (one started later, already past its ready line): its
   * gaps count from now, so it must answer at once.
   */
  add(name: string, address: string, options: { concurrency?: number } = {}): void {
    if (this.stoppedAt !== undefined) throw new Error('the load was stopped');
    const s: Tracked = {
      name,
      address,
      ids: [],
      okReplies: 0,
      refusals: new Map(),
      lastOkAt: Date.now(),
      longestGapMs: 0,
      longestGapFromMs: 0,
      longestGapToMs: 0,
      clientLastOkAt: [],
      worstClientGapMs: 0,
      gaps: [],
      okSeconds: new Set(),
      addedAt: Date.now(),
      calls: 0,
      // One server per client: a refusal must not be hidden by failing over to another server.
      clients: Array.from({ length: options.concurrency ?? this.options.concurrency ?? 2 }, () =>
        createClient({ servers: [address], timeoutMs: 50, deadlineMs: this.options.deadlineMs ?? 300, retries: 2 }),
      ),
    };
    this.servers.push(s);
    const maxCalls = this.options.maxCalls ?? 2_000_000;
    for (const [c, client] of s.clients.entries()) {
      s.clientLastOkAt[c] = s.lastOkAt;
      this.loops.push(
        (async () => {
          while (this.stoppedAt === undefined && s.calls++ < maxCalls) {
            try {
              this.ok(s, c, await client.nextIds(this.options.batch ?? 10));
            } catch (error) {
              if (!(error instanceof HailstoneError)) throw error;
              s.refusals.set(error.code, (s.refusals.get(error.code) ?? 0) + 1);
              await sleep(10);
            }
            await sleep(this.options.pauseMs ?? 1);
          }
        })(),
      );
    }
  }

  private ok(s: Tracked, client: number, ids: bigint[]): void {
    // Ids of a reply that came in after the stop are kept (they were issued), its time is not.
    for (const id of ids) s.ids.push(id);
    if (this.stoppedAt !== undefined) return;
    const now = Date.now();
    this.gap(s, now);
    s.worstClientGapMs = Math.max(s.worstClientGapMs, now - s.clientLastOkAt[client]!);
    s.clientLastOkAt[client] = now;
    s.lastOkAt = now;
    s.okReplies++;
    s.okSeconds.add(Math.floor((now - this.windowStart) / 1000));
  }

  private gap(s: Tracked, now: number): void {
    const gap = now - s.lastOkAt;
    if (gap > 100) s.gaps.push([s.lastOkAt - this.windowStart, now - this.windowStart]);
    if (gap > s.longestGapMs) {
      s.longestGapMs = gap;
      s.longestGapFromMs = s.lastOkAt - this.windowStart;
      s.longestGapToMs = now - this.windowStart;
    }
  }

  private halt(): void {
    if (this.stoppedAt !== undefined) return;
    this.stoppedAt = Date.now();
    for (const s of this.servers) {
      this.gap(s, this.stoppedAt);
      for (const at of s.clientLastOkAt) s.worstClientGapMs = Math.max(s.worstClientGapMs, this.stoppedAt - at);
    }
  }

  /**
   * Waits for an OK reply from every server (each server's first start waits out a lead
   * window), then starts the measured window afresh: gaps count from now.
   */
  async ready(timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.servers.some((s) => s.okReplies === 0)) {
      if (Date.now() > until || this.stoppedAt !== undefined) throw new Error(`no OK reply within ${timeoutMs} ms from: ${this.servers.filter((s) => s.okReplies === 0).map((s) => `${s.name} (refusals: ${JSON.stringify(Object.fromEntries(s.refusals))})`).join(', ')}`);
      await sleep(5);
    }
    this.windowStart = Date.now();
    for (const s of this.servers) {
      s.lastOkAt = this.windowStart;
      s.clientLastOkAt.fill(this.windowStart);
      s.longestGapMs = s.longestGapFromMs = s.longestGapToMs = s.worstClientGapMs = 0;
      s.gaps = [];
      s.okSeconds.clear();
      s.refusals.clear();
    }
  }

  /** Notes an event (a member killed, paused, ...) to print beside the gaps. */
  mark(what: string): void {
    this.marks.push({ at: Date.now(), what });
  }

  /** When the first event was noted, in ms from the window's start (undefined before any). */
  firstMarkMs(): number | undefined {
    return this.marks.length === 0 ? undefined : this.marks[0]!.at - this.windowStart;
  }

  /** Resolves once every server gave at least `n` more OK replies (rejects after `ms`). */
  async more(n: number, ms = 20_000): Promise<void> {
    const targets = this.servers.map((s) => s.okReplies + n);
    const until = Date.now() + ms;
    while (this.servers.some((s, i) => s.okReplies < targets[i]!)) {
      if (Date.now() > until || this.stoppedAt !== undefined) {
        throw new Error(`wanted ${n} more OK replies from every server within ${ms} ms: ${this.describe()}`);
      }
      await sleep(5);
    }
  }

  /** Stops the load (the gap since the last OK reply counts up to now) and closes the clients. */
  async stop(): Promise<ServerAvailability[]> {
    this.halt();
    clearTimeout(this.timer);
    await Promise.all(this.loops);
    await Promise.all(this.servers.flatMap((s) => s.clients.map((c) => c.close())));
    return this.report();
  }

  report(): ServerAvailability[] {
    const now = this.stoppedAt ?? Date.now();
    return this.servers.map((s) => {
      // Whole seconds only, from the window's start or from when the server was added,
      // whichever is later: a partial second would count against a server for nothing.
      const first = Math.ceil((Math.max(this.windowStart, s.addedAt) - this.windowStart) / 1000);
      const seconds = Math.max(1, Math.floor((now - this.windowStart) / 1000) - first);
      // A gap still open counts up to now.
      const open = now - s.lastOkAt;
      const longer = open > s.longestGapMs;
      const okSeconds = [...s.okSeconds].filter((second) => second >= first && second < first + seconds).length;
      return {
        name: s.name,
        address: s.address,
        ids: s.ids,
        okReplies: s.okReplies,
        refusals: Object.fromEntries(s.refusals),
        longestGapMs: longer ? open : s.longestGapMs,
        availability: okSeconds / seconds,
        seconds,
        secondsWithoutOk: seconds - okSeconds,
        longestGapFromMs: longer ? s.lastOkAt - this.windowStart : s.longestGapFromMs,
        longestGapToMs: longer ? now - this.windowStart : s.longestGapToMs,
        worstClientGapMs: Math.max(s.worstClientGapMs, ...s.clientLastOkAt.map((at) => now - at)),
        gaps: open > 100 && this.stoppedAt === undefined ? [...s.gaps, [s.lastOkAt - this.windowStart, now - this.windowStart]] : [...s.gaps],
      };
    });
  }

  /** Every id from every server. */
  allIds(): bigint[] {
    return this.servers.flatMap((s) => s.ids);
  }

  /** One line per server (and the events, in ms from the window's start), for logs and failure messages. */
  describe(): string {
    const events = this.marks.map((m) => `${m.what} @${m.at - this.windowStart}ms`).join(', ');
    const lines = this.report().map(
      (s) =>
        `${s.name}: longest gap ${s.longestGapMs} ms (${s.longestGapFromMs}..${s.longestGapToMs} ms; one client's worst ${s.worstClientGapMs} ms), ` +
        `available ${(100 * s.availability).toFixed(2)}% of ${s.seconds} s (${s.secondsWithoutOk} s without an OK reply), ${s.okReplies} OK replies, ${s.ids.length} ids, refusals ${JSON.stringify(s.refusals)}`,
    );
    return [...lines, `events: ${events || 'none'}`].join('\n');
  }
}
