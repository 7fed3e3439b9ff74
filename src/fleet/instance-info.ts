// What a claim key says about the instance that holds it: who it is, where it runs, and the
// UDP address clients that find servers in etcd send to — the advertised one (--advertise),
// else the bound one. A claim whose address no client can use is said once in the log, not
// skipped in silence.

import { hostPort, parseAdvertise, unusableAddress } from '../address.js';
import type { NodeLogger } from '../logger.js';
import { VERSION } from '../version.js';
import type { ClaimInfo } from './etcd.js';
import type { FleetRuntime } from './runtime.js';

export class InstanceInfo {
  readonly instance: string;
  private readonly startedAt: string;
  /** --advertise: the host (and port) for the claim. */
  private readonly advertise: { host: string; port: number | undefined } | undefined;
  /** The unusable claim address already logged. */
  private addressWarned: string | undefined;

  constructor(
    private readonly options: {
      logger: NodeLogger;
      cluster: string;
      /** The UDP address the server is bound to. */
      bound: () => string;
      /** "host:port", or "host" (with the bound port). */
      advertise: string | undefined;
      /** Where the instance id, start time and process identity come from. */
      runtime: FleetRuntime;
    },
  ) {
    this.instance = options.runtime.instanceId();
    this.startedAt = new Date(options.runtime.wall()).toISOString();
    this.advertise = options.advertise === undefined ? undefined : parseAdvertise(options.advertise);
  }

  info(): ClaimInfo {
    // Where it runs, precisely enough that a successor on this machine can prove it gone
    // (process-identity.ts) instead of waiting out its lease.
    const { host, pid, identity } = this.options.runtime.self();
    return { instance: this.instance, host, udp: this.udp(), pid, version: VERSION, startedAt: this.startedAt, ...identity };
  }

  /** The UDP address for the claim: the advertised one, else the bound one; "" for a server without UDP (--no-udp). */
  udp(): string {
    const bound = this.options.bound();
    const advertise = this.advertise;
    if (advertise === undefined || bound === '') return bound;
    const port = advertise.port ?? Number(/:(\d+)$/.exec(bound)?.[1]);
    return Number.isInteger(port) && port > 0 ? hostPort(advertise.host, port) : bound;
  }

  /** Said once a claim is made: a claim whose address no client can use is not skipped in silence. */
  checkAddress(): void {
    const udp = this.udp();
    // No UDP served (--no-udp): UDP clients have nothing to find here, and that is no mistake.
    if (udp === '') return;
    const why = unusableAddress(udp);
    if (why === undefined || this.addressWarned === udp) return;
    this.addressWarned = udp;
    this.options.logger.warn(
      { udp, cluster: this.options.cluster },
      `the claim names udp ${udp}: ${why}; clients that find servers in etcd cannot use it — give --advertise HOST:PORT (the address clients reach this server at)`,
    );
  }
}
