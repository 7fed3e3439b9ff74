// The client: asks hailstone servers for ids over protocol v1.
//
// Requests and replies (nonces, one connected socket per server address, the checks a reply
// must pass) are exchange.ts's; servers, their names and addresses are endpoint.ts's. This
// file is the policy over them: lost requests are retried with a new nonce, with
// exponential backoff and jitter, across the servers, until a deadline. A name that got no
// reply is resolved again before the next request to it.
//
// A server address with nothing listening (ICMP port unreachable, seen at once on a
// connected socket) is skipped for the rest of the batch; when every server has refused,
// the call fails with UNREACHABLE at once. A server that answered UNAVAILABLE is not asked
// again before its retry-after; when every server has asked to wait, the call waits (with
// jitter) for the first of them, and one batch sends at most `maxAttempts` requests that
// bring no ids.

import { isIP } from 'node:net';
import { HailstoneError, InvalidArgumentError, checkInteger } from '../errors.js';
import { DEFAULT_LAYOUT, type Layout, timestampOf } from '../layout.js';
import { Authenticator } from '../protocol/auth.js';
import { MAX_IDS_PER_REQUEST } from '../protocol/wire.js';
import type { Client, ClientCoreOptions, ClientStats } from './api.js';
import { NodeIdConflictDetector, describeConflict } from './conflicts.js';
import type { ServerDiscovery } from './discovery.js';
import { type Endpoint, addressesOf, defaultLookup, nothingListening, parseEndpoint } from './endpoint.js';
import { Exchanges, type Outcome, peerKey } from './exchange.js';
import { IdPool } from './pool.js';

export type { Client, ClientCoreOptions, ClientStats } from './api.js';

/** Requests one nextIds() call keeps outstanding at most. */
const MAX_IN_FLIGHT = 16;

const first = (ids: bigint[]): bigint => ids[0]!;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class IdClient implements Client {
  private endpoints: Endpoint[];
  private readonly discovery: ServerDiscovery | undefined;
  private readonly pool: IdPool | undefined;
  private readonly auth: Authenticator | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly deadlineMs: number;
  private readonly layout: Layout;
  private readonly maxFutureMs: number;
  private readonly maxAttempts: number;
  private readonly lookup: (hostname: string) => Promise<string[]>;
  private readonly counters = { timeouts: 0, unavailable: 0 };
  private readonly conflicts: NodeIdConflictDetector;
  private readonly exchanges: Exchanges;
  private next = 0;
  private closed = false;
  private readonly coalesceMs: number | false;
  /** nextId() calls waiting for the request they will share (see flush). */
  private gathering: { resolve: (id: bigint) => void; reject: (error: unknown) => void }[] | undefined;

  constructor(options: ClientCoreOptions) {
    if (options?.discover === undefined && (!Array.isArray(options?.servers) || options.servers.length === 0)) {
      throw new InvalidArgumentError('servers', 'must list at least one "host:port" (or give etcd to find the servers of a fleet)');
    }
    this.endpoints = (options.servers ?? []).map(parseEndpoint);
    this.discovery = options.discover?.((list) => this.setServers(list));
    this.auth = options.key === undefined ? undefined : new Authenticator(options.key);
    this.timeoutMs = checkInteger('timeoutMs', options.timeoutMs ?? 250, 1, 600_000);
    this.retries = checkInteger('retries', options.retries ?? 8, 0, 1000);
    this.deadlineMs = checkInteger('deadlineMs', options.deadlineMs ?? 3000, 1, 3_600_000);
    this.layout = options.layout ?? DEFAULT_LAYOUT;
    this.maxFutureMs = checkInteger('maxFutureMs', options.maxFutureMs ?? 86_400_000, 0, 365 * 86_400_000);
    this.maxAttempts = checkInteger('maxAttempts', options.maxAttempts ?? 32, 1, 100_000);
    for (const name of ['onNodeIdConflict', 'lookup'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') throw new InvalidArgumentError(name, 'must be a function');
    }
    this.lookup = options.lookup ?? defaultLookup;
    this.coalesceMs = options.coalesceMs === false ? false : checkInteger('coalesceMs', options.coalesceMs ?? 0, 0, 1000);
    this.pool = options.pool === undefined ? undefined : new IdPool((n) => this.nextIds(n), options.pool);
    this.conflicts = new NodeIdConflictDetector(
      (tick) => timestampOf(this.layout, tick),
      options.onNodeIdConflict ?? ((c) => process.emitWarning(describeConflict(c), { code: 'HAILSTONE_NODE_ID_CONFLICT' })),
    );
    this.exchanges = new Exchanges({ auth: this.auth, layout: this.layout, maxFutureMs: this.maxFutureMs, onIds: (origin, ids) => this.noteOrigin(origin, ids) });
  }

  stats(): ClientStats {
    const { requests, rejectedReplies } = this.exchanges;
    return { requests, ...this.counters, rejectedReplies, nodeIdConflicts: this.conflicts.count, ...(this.pool === undefined ? {} : { pool: this.pool.stats() }) };
  }

  nextId(): Promise<bigint> {
    if (this.pool !== undefined) return this.pool.next();
    const windowMs = this.coalesceMs;
    if (windowMs === false) return this.nextIds(1).then(first);
    return new Promise<bigint>((resolve, reject) => {
      if (this.gathering === undefined) {
        this.gathering = [];
        // The same tick: once the code that is running now and the continuations it resumed are done.
        if (windowMs === 0) queueMicrotask(() => this.flush());
        else setTimeout(() => this.flush(), windowMs);
      }
      this.gathering.push({ resolve, reject });
    });
  }

  /**
   * Serves the nextId() calls gathered: one nextIds(k) per MAX_IDS_PER_REQUEST of them (one
   * datagram each), its ids handed out in call order. A group that fails fails its own calls
   * only.
   */
  private flush(): void {
    const callers = this.gathering ?? [];
    this.gathering = undefined;
    for (let from = 0; from < callers.length; from += MAX_IDS_PER_REQUEST) {
      const group = callers.slice(from, from + MAX_IDS_PER_REQUEST);
      this.nextIds(group.length).then(
        (ids) => {
          for (let i = 0; i < group.length; i++) group[i]!.resolve(ids[i]!);
        },
        (error: unknown) => {
          for (const caller of group) caller.reject(error);
        },
      );
    }
  }

  takeId(): bigint | undefined {
    return this.pool?.take();
  }

  async nextIds(count: number): Promise<bigint[]> {
    checkInteger('count', count, 1, 1_000_000);
    const deadline = Date.now() + this.deadlineMs;
    if (this.discovery !== undefined) await this.discovered(deadline);
    // One datagram's worth (every nextId() group): one batch, nothing to spread.
    if (count <= MAX_IDS_PER_REQUEST) return this.batch(count, deadline);
    const sizes: number[] = [];
    for (let left = count; left > 0; left -= MAX_IDS_PER_REQUEST) sizes.push(Math.min(left, MAX_IDS_PER_REQUEST));
    // At most MAX_IN_FLIGHT requests of one call at a time: a burst of hundreds of datagrams
    // overflows socket buffers on the way, and every loss costs a timeout.
    const results = new Array<bigint[]>(sizes.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(MAX_IN_FLIGHT, sizes.length) }, async () => {
        while (next < sizes.length) {
          const i = next++;
          results[i] = await this.batch(sizes[i]!, deadline);
        }
      }),
    );
    return results.flat();
  }

  /** Fleet mode: the servers etcd lists now (given ones included). */
  private setServers(list: string[]): void {
    const byText = new Map(this.endpoints.map((e) => [e.text, e]));
    this.endpoints = list.map((text) => byText.get(text) ?? parseEndpoint(text));
    // Servers that left the fleet: their sockets go too, once nothing waits on them.
    this.exchanges.prune(new Set(this.endpoints.flatMap((e) => (e.addresses ?? []).map((a) => peerKey(a, e.port)))));
  }

  private async discovered(deadline: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.discovery!.ready,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('etcd did not answer in time')), Math.max(1, deadline - Date.now()));
        }),
      ]);
    } catch (error) {
      const refused = this.discovery!.refusal?.(error);
      if (refused !== undefined) throw new HailstoneError('COORDINATOR_REFUSED', `cannot list the fleet's servers: ${refused}`);
      throw new HailstoneError('UNAVAILABLE', `cannot list the fleet's servers: ${(error as Error).message}; check --etcd`, { retryAfterMs: 1000 });
    } finally {
      clearTimeout(timer);
    }
    if (this.endpoints.length === 0) {
      // The next call sees the list read again, in case the stream of changes stalled.
      this.discovery!.refresh?.();
      const where = await this.discovery!.describeEmpty?.().catch(() => undefined);
      throw new HailstoneError('UNAVAILABLE', `no live servers in the fleet (${where ?? 'no claims in etcd'}): start one`, { retryAfterMs: 1000 });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.pool?.close();
    this.closed = true;
    await Promise.all([this.exchanges.close(), this.discovery?.close()]);
  }

  /** `count` ids, asking again for what a reply left short, until the deadline. */
  private async batch(count: number, deadline: number): Promise<bigint[]> {
    const ids: bigint[] = [];
    let attempts = 0; // requests in this call that brought no ids: bounded by maxAttempts
    let lost = 0; // of them, the ones that got no reply at all: bounded by `retries`
    let waits = 0; // times every server had asked to wait
    let last = 'no reply';
    // Server addresses with nothing listening (ICMP port unreachable), per server.
    const refused = new Map<Endpoint, Set<string>>();
    const isRefused = (e: Endpoint) => {
      const dead = refused.get(e);
      return dead !== undefined && e.addresses !== undefined && e.addresses.every((a) => dead.has(a));
    };
    // Which server this batch asks first (round robin over calls); the list may change under
    // fleet discovery, so it is taken modulo its length at each use.
    let server = this.next++;
    while (ids.length < count) {
      if (this.closed) throw new HailstoneError('CLOSED', 'the client was closed');
      if (Date.now() >= deadline || lost > this.retries || attempts >= this.maxAttempts) throw this.givingUp(attempts, last, refused);
      if (this.endpoints.length === 0) {
        // A fleet whose servers all went away: wait for one to claim — and read the list
        // again, in case the stream of changes stalled.
        this.discovery?.refresh?.();
        last = 'no live servers in the fleet';
        await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
        continue;
      }
      const live = this.endpoints.filter((e) => !isRefused(e));
      if (live.length === 0) {
        // Nothing listens at any server: with a fixed list, waiting out the deadline cannot
        // help. A fleet's list follows etcd: a dead server's claim goes, a new one comes.
        if (this.discovery === undefined || Date.now() + 50 >= deadline) throw this.unreachable(refused);
        this.discovery.refresh?.();
        last = nothingListening([...refused.keys()]);
        await sleep(50);
        continue;
      }
      // The next server that has not refused or asked to wait; if all have asked, wait for the first of them.
      const now = Date.now();
      let endpoint: Endpoint | undefined;
      for (let i = 0; i < this.endpoints.length && endpoint === undefined; i++) {
        const candidate = this.endpoints[(server + i) % this.endpoints.length]!;
        if (candidate.notBefore <= now && !isRefused(candidate)) {
          endpoint = candidate;
          server += i;
        }
      }
      if (endpoint === undefined) {
        const soonest = Math.min(...live.map((e) => e.notBefore));
        // Exponential backoff with jitter on top of what the servers asked, so clients that
        // were all refused at once do not all come back in the same millisecond.
        const wait = soonest - now + Math.random() * Math.min(1000, 5 * 2 ** waits++);
        if (now + wait >= deadline) {
          throw new HailstoneError('UNAVAILABLE', `${last}, past this call's deadline`, { retryAfterMs: Math.max(1, soonest - now) });
        }
        await sleep(wait);
        continue;
      }
      const outcome = await this.exchange(endpoint, count - ids.length, Math.min(this.timeoutMs, deadline - Date.now()));
      if (outcome.kind === 'ok') {
        ids.push(...outcome.ids);
        attempts = lost = waits = 0;
        continue;
      }
      attempts++;
      if (outcome.kind === 'refused') {
        // The next request to this server goes to its next address, if it has one.
        let addresses = refused.get(endpoint);
        if (addresses === undefined) refused.set(endpoint, (addresses = new Set()));
        addresses.add(outcome.address);
        server++;
        continue;
      }
      if (outcome.kind === 'bad_request') {
        throw new HailstoneError('BAD_REPLY', `${endpoint.text} answered BAD_REQUEST: it does not speak this client's protocol version or limits`);
      }
      if (outcome.kind === 'unavailable') {
        this.counters.unavailable++;
        endpoint.notBefore = Date.now() + Math.max(1, outcome.retryAfterMs);
        last = `${endpoint.text} unavailable, retry after ${outcome.retryAfterMs} ms`;
        server++;
        continue;
      }
      lost++;
      this.counters.timeouts++;
      last = outcome.rejected ?? `no reply from ${endpoint.text} within ${this.timeoutMs} ms`;
      // A name may have moved to other addresses: resolve it again before the next request.
      if (isIP(endpoint.host) === 0) endpoint.addresses = undefined;
      server++;
      // Exponential backoff with full jitter, capped by the deadline.
      const backoff = Math.random() * Math.min(1000, 10 * 2 ** lost);
      await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())));
    }
    return ids;
  }

  private givingUp(attempts: number, last: string, refused: Map<Endpoint, Set<string>>): HailstoneError {
    const hint = this.auth
      ? 'check that the servers run and share this key'
      : 'check that the servers run; a server that requires a key drops requests without one (pass --key-file / key)';
    const dead = refused.size === 0 ? '' : `; ${nothingListening([...refused.keys()])}`;
    return new HailstoneError('TIMEOUT', `no ids from ${this.endpoints.map((e) => e.text).join(', ')} after ${attempts} attempt(s) (last: ${last}${dead}); ${hint}`);
  }

  private unreachable(refused: Map<Endpoint, Set<string>>): HailstoneError {
    return new HailstoneError('UNREACHABLE', `${nothingListening([...refused.keys()])}: start the server, or check its address and port (--server / servers)`);
  }

  /** One request to the endpoint's next address (resolving its name first if needed). */
  private async exchange(endpoint: Endpoint, count: number, timeoutMs: number): Promise<Outcome> {
    let address: string;
    try {
      const addresses = await addressesOf(endpoint, this.lookup);
      address = addresses[endpoint.nextAddress++ % addresses.length]!;
    } catch (error) {
      return { kind: 'timeout', rejected: (error as Error).message };
    }
    return this.exchanges.send(endpoint, address, count, timeoutMs);
  }

  /** Which node issued these ids, from where, when: for the node id conflict check. */
  private noteOrigin(origin: string, ids: bigint[]): void {
    const l = this.layout;
    const shift = BigInt(l.nodeBits + l.sequenceBits);
    const nodeId = Number((ids[0]! >> BigInt(l.sequenceBits)) & ((1n << BigInt(l.nodeBits)) - 1n));
    this.conflicts.observe(origin, nodeId, Number(ids[0]! >> shift), Number(ids[ids.length - 1]! >> shift));
  }
}

export type { NodeIdConflict } from './conflicts.js';

/** A client of the servers listed (or found by a discovery). createClient() in src/create-client.ts adds etcd. */
export function createUdpClient(options: ClientCoreOptions): Client {
  return new IdClient(options);
}
