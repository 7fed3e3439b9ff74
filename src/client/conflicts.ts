// Two servers running with one node id: detected from the ids they hand out.
//
// Local mode cannot stop two machines from being started with the same --node-id, and ids
// from them collide. A client that talks to both can see it cheaply: for every node id it
// keeps, per server address, the range of ticks it has received. Two addresses whose
// ranges for one node id overlap were issuing under that node id at the same time — a
// configuration error. A node id that legitimately moved (a server replaced, restarted
// elsewhere) resumes above everything the old one issued, so its ranges never overlap.
//
// Worker stripes are not told apart: all workers of a server answer on its one address.
// A server reached under two addresses (multi-homed, or listed by two names that resolve
// to different addresses) would look like two servers; list each server once.

/** One pair of server addresses seen issuing under one node id at the same time. */
export interface NodeIdConflict {
  nodeId: number;
  /** The two server addresses ("host:port"), in the order they were first seen. */
  servers: [string, string];
  /** The overlapping span of id timestamps, Unix ms. */
  from: number;
  to: number;
}

interface TickRange {
  low: number;
  high: number;
}

export class NodeIdConflictDetector {
  /** node id → address → ticks received from it. */
  private readonly ranges = new Map<number, Map<string, TickRange>>();
  private readonly reported = new Set<string>();
  private found = 0;

  constructor(
    private readonly timestampOfTick: (tick: number) => number,
    private readonly onConflict: (conflict: NodeIdConflict) => void,
  ) {}

  /** How many distinct (node id, address pair) conflicts have been seen. */
  get count(): number {
    return this.found;
  }

  /** Ids of one reply: all from one node id, ticks from `low` to `high`. */
  observe(address: string, nodeId: number, low: number, high: number): void {
    let byAddress = this.ranges.get(nodeId);
    if (byAddress === undefined) this.ranges.set(nodeId, (byAddress = new Map()));
    let mine = byAddress.get(address);
    if (mine === undefined) byAddress.set(address, (mine = { low, high }));
    else {
      mine.low = Math.min(mine.low, low);
      mine.high = Math.max(mine.high, high);
    }
    if (byAddress.size < 2) return;
    for (const [other, theirs] of byAddress) {
      if (other === address || theirs.high < mine.low || mine.high < theirs.low) continue;
      const pair = address < other ? `${nodeId} ${address} ${other}` : `${nodeId} ${other} ${address}`;
      if (this.reported.has(pair)) continue;
      this.reported.add(pair);
      this.found++;
      this.onConflict({
        nodeId,
        servers: [other, address],
        from: this.timestampOfTick(Math.max(mine.low, theirs.low)),
        to: this.timestampOfTick(Math.min(mine.high, theirs.high)),
      });
    }
  }
}

export function describeConflict(c: NodeIdConflict): string {
  return (
    `servers ${c.servers[0]} and ${c.servers[1]} both issued ids with node id ${c.nodeId} ` +
    `between ${new Date(c.from).toISOString()} and ${new Date(c.to).toISOString()}: ` +
    `they can hand out the same ids. Give every server its own --node-id`
  );
}
