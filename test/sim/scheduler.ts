// One seeded scheduler in virtual time: every timer, reply and fault of a simulated fleet is
// an event here, run in (time, order of scheduling) order. Virtual time jumps to the next
// event, so simulated minutes cost milliseconds; after each instant's events the promise
// continuations they started run to completion (one macrotask turn) before time moves on,
// which keeps async code deterministic: nothing but this queue decides what runs next.

export interface ScheduledEvent {
  readonly at: number;
  readonly seq: number;
  cancelled: boolean;
  run: () => void;
}

/** A binary min-heap of events by (at, seq). */
class EventHeap {
  private readonly items: ScheduledEvent[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): ScheduledEvent | undefined {
    return this.items[0];
  }

  push(event: ScheduledEvent): void {
    const items = this.items;
    items.push(event);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  pop(): ScheduledEvent | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < items.length && before(items[l]!, items[m]!)) m = l;
      if (r < items.length && before(items[r]!, items[m]!)) m = r;
      if (m === i) break;
      [items[i], items[m]] = [items[m]!, items[i]!];
      i = m;
    }
    return top;
  }
}

function before(a: ScheduledEvent, b: ScheduledEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** What the in-memory coordinator needs of time: the scheduler's, or real time (live.ts). */
export interface Clockwork {
  readonly now: number;
  at(time: number, run: () => void): ScheduledEvent;
  after(ms: number, run: () => void): ScheduledEvent;
}

/** Lets every promise continuation started so far run (one macrotask turn drains the microtask queue). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class Scheduler implements Clockwork {
  /** Virtual ms since the simulation started. */
  now = 0;
  private seq = 0;
  private readonly heap = new EventHeap();
  /** Events run, for speed figures. */
  ran = 0;

  at(time: number, run: () => void): ScheduledEvent {
    if (!Number.isFinite(time)) throw new RangeError(`an event at ${time} ms: every event needs a finite virtual time`);
    const event: ScheduledEvent = { at: Math.max(time, this.now), seq: this.seq++, cancelled: false, run };
    this.heap.push(event);
    return event;
  }

  after(ms: number, run: () => void): ScheduledEvent {
    return this.at(this.now + Math.max(0, ms), run);
  }

  /**
   * Runs every event due up to `until` (virtual ms), an instant at a time: the events of one
   * instant, then the continuations they started, then the next instant.
   */
  async runUntil(until: number, stop: () => boolean = () => false): Promise<void> {
    await settle();
    for (;;) {
      const next = this.heap.peek();
      if (next === undefined || next.at > until || stop()) break;
      this.now = next.at;
      let atThisInstant = 0;
      while (this.heap.peek()?.at === this.now) {
        if (++atThisInstant > 1_000_000) throw new Error(`more than a million events at ${this.now} ms: something schedules itself without waiting`);
        const event = this.heap.pop()!;
        if (event.cancelled) continue;
        this.ran++;
        event.run();
      }
      await settle();
    }
    if (!stop()) this.now = Math.max(this.now, until);
  }
}
