// A UDP proxy on loopback that loses, duplicates and reorders datagrams both ways, for
// one client. Decisions come from a seeded PRNG.

import { createSocket, type Socket } from 'node:dgram';

export interface LossyProxyOptions {
  drop: number;
  duplicate: number;
  /** Each datagram is delayed by a random 0..maxDelayMs, which reorders them. */
  maxDelayMs: number;
  random: () => number;
}

export class LossyProxy {
  private client: { port: number; address: string } | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  forwarded = 0;
  dropped = 0;
  duplicated = 0;

  private constructor(
    private readonly front: Socket,
    private readonly back: Socket,
    private readonly targetPort: number,
    private readonly o: LossyProxyOptions,
  ) {
    front.on('message', (msg, rinfo) => {
      this.client = { port: rinfo.port, address: rinfo.address };
      this.pass(msg, (m) => back.send(m, targetPort, '127.0.0.1'));
    });
    back.on('message', (msg) => {
      const c = this.client;
      if (c) this.pass(msg, (m) => front.send(m, c.port, c.address));
    });
  }

  static async start(targetPort: number, options: LossyProxyOptions): Promise<LossyProxy> {
    const front = createSocket('udp4');
    const back = createSocket('udp4');
    await Promise.all([front, back].map((s) => new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()))));
    return new LossyProxy(front, back, targetPort, options);
  }

  get port(): number {
    return this.front.address().port;
  }

  private pass(msg: Buffer, send: (m: Buffer) => void): void {
    if (this.o.random() < this.o.drop) {
      this.dropped++;
      return;
    }
    const copies = this.o.random() < this.o.duplicate ? 2 : 1;
    if (copies === 2) this.duplicated++;
    for (let i = 0; i < copies; i++) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.forwarded++;
        send(msg);
      }, Math.floor(this.o.random() * this.o.maxDelayMs));
      this.timers.add(timer);
    }
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    await Promise.all([this.front, this.back].map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
