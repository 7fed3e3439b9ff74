// A clock the test sets by hand. It has the interface of the real one: a function
// returning ms since the Unix epoch (pass `clock.read` where Date.now would go).

export class ManualClock {
  now: number;

  constructor(start: number) {
    this.now = start;
  }

  readonly read = (): number => this.now;

  set(ms: number): void {
    this.now = ms;
  }

  advance(ms: number): void {
    this.now += ms;
  }
}

/**
 * A node's timer driven by hand (pass it as `timer`): tick() runs the periodic work of
 * every node that registered, as the real interval would when its period has passed.
 */
export class ManualTimer {
  private readonly ticks = new Set<() => void>();

  readonly every = (_periodMs: number, tick: () => void): { cancel(): void } => {
    this.ticks.add(tick);
    return { cancel: () => this.ticks.delete(tick) };
  };

  /** How many nodes have a running timer (a closed node's is cancelled). */
  get running(): number {
    return this.ticks.size;
  }

  tick(): void {
    for (const tick of [...this.ticks]) tick();
  }
}
