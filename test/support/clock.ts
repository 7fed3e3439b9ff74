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
