// One contract for every place a node keeps its reservation R: the state file (on the
// simulated disk), the etcd key (against a real etcd, and against the in-memory coordinator
// the fleet simulator runs on) and the two combined (fleet mode with a state dir). node.ts relies on exactly these rules and nothing else, so a store that
// passes them can stand under a node.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HailstoneError } from '../src/errors.js';
import { type Claim, claimNodeId } from '../src/fleet/claim.js';
import { EtcdStore, claimRefOf } from '../src/fleet/etcd-store.js';
import { CombinedStore } from '../src/node/combined-store.js';
import { claimKey, reservationKey } from '../src/fleet/etcd.js';
import { EtcdCoordinator, connectEtcd } from '../src/fleet/etcd-adapter.js';
import { systemRuntime } from '../src/system-runtime.js';
import { DEFAULT_LAYOUT } from '../src/layout.js';
import type { Etcd3 } from 'etcd3';
import type { Coordinator } from '../src/fleet/coordinator.js';
import { liveMemoryEtcd } from './sim/live.js';
import { fileStoreOf } from '../src/node/open.js';
import { checkNodeRules } from '../src/node/options.js';
import { OwnershipLostError, type ReservationStore } from '../src/node/store.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { SimProcesses, SimulatedFs } from './support/sim-fs.js';
import { prng } from './support/seed.js';
import { silent } from './support/logger.js';

const NODE = 6;
const T = DEFAULT_LAYOUT.epoch + 800_000_000;
type Stripe = { index: number; count: number };

/** A place to keep reservations, and the attacks the contract needs on it. */
interface Subject {
  /** A store for the node id and stripe (each call: a new process, as after a restart). */
  store(worker: Stripe): Promise<ReservationStore>;
  /** Takes ownership away from an open store behind its back (a lock file deleted, a claim key deleted). */
  loseOwnership(worker: Stripe): Promise<void>;
  /** Damages the stored record of this stripe. */
  damage(worker: Stripe): Promise<void>;
  /**
   * Whether a stripe without a record of its own, under a node id that has others, counts
   * as a first start: a state file can be deleted (the node must wait a lead window), an
   * acknowledged etcd key cannot.
   */
  ownRecordCanBeLost: boolean;
  /** Lets go of what the subject holds (its claim, its etcd client). */
  done(): Promise<void>;
}

function fileSubject(fs = new SimulatedFs(prng(1))): Subject {
  const procs = new SimProcesses();
  const rules = (worker: Stripe) => checkNodeRules({ nodeId: NODE, worker, logger: silent });
  const file = (worker: Stripe) => `/state/node-${NODE}.w${worker.index}-${worker.count}.state`;
  return {
    store: async (worker) =>
      fileStoreOf({ nodeId: NODE, stateDir: '/state', worker, fs, processes: procs.spawn().probe, kernelLocks: false, logger: silent }, rules(worker)),
    loseOwnership: async (worker) => fs.unlink(`${file(worker)}.lock`),
    damage: async (worker) => {
      const bytes = fs.peek(file(worker))!.slice();
      bytes[bytes.length - 1]! ^= 0xff;
      fs.overwrite(file(worker), bytes);
    },
    ownRecordCanBeLost: true,
    done: async () => undefined,
  };
}

/** The coordinator a subject claims and writes through, and an operator's hands on its keys. */
interface CoordinatorUnderTest {
  connect(): Coordinator;
  put(key: string, value: string): Promise<void>;
  remove(key: string): Promise<void>;
  close(): void;
}

function realEtcd(endpoint: string): CoordinatorUnderTest {
  const client: Etcd3 = connectEtcd({ endpoints: [endpoint] });
  return {
    connect: () => new EtcdCoordinator(client, [endpoint]),
    put: async (key, value) => void (await client.put(key).value(value)),
    remove: async (key) => void (await client.delete().key(key)),
    close: () => client.close(),
  };
}

function memoryEtcd(): CoordinatorUnderTest {
  const { etcd, connect } = liveMemoryEtcd();
  return {
    connect,
    put: async (key, value) => etcd.adminPut(key, value),
    remove: async (key) => etcd.adminDelete(key),
    close: () => undefined,
  };
}

function etcdSubject(coordinator: CoordinatorUnderTest, cluster: string, withFile: boolean): Subject {
  const files = fileSubject();
  let claim: Claim | undefined;
  let instance = 0;
  const claimed = async (): Promise<Claim> => {
    if (claim === undefined || claim.lost !== undefined) {
      claim = await claimNodeId({
        coordinator: coordinator.connect(),
        runtime: systemRuntime,
        cluster,
        nodeId: NODE,
        maxNodeId: 1023,
        leaseTtlS: 30,
        claimWaitMs: 10_000,
        info: { instance: `contract-${instance++}`, host: 'test', udp: '', pid: process.pid, version: 'test', startedAt: '' },
        logger: silent,
      });
    }
    return claim;
  };
  return {
    store: async (worker) => {
      const etcdStore = new EtcdStore({ coordinator: coordinator.connect(), runtime: systemRuntime, cluster, claim: claimRefOf(await claimed()), worker: worker as never });
      return withFile ? new CombinedStore(etcdStore, await files.store(worker)) : etcdStore;
    },
    loseOwnership: async () => coordinator.remove(claimKey(cluster, NODE)),
    damage: async (worker) => coordinator.put(reservationKey(cluster, NODE, worker), 'damaged'),
    // Combined: etcd has every R it acknowledged, so a missing state file loses nothing.
    ownRecordCanBeLost: false,
    done: async () => {
      await claim?.release();
      coordinator.close();
    },
  };
}

requireEtcd();

describe.skipIf(!etcdInstalled)('the ReservationStore contract', () => {
  let etcd: TestEtcd;
  let n = 0;
  beforeAll(async () => {
    etcd = await TestEtcd.start();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  const subjects: [string, () => Subject][] = [
    ['the state file (simulated disk)', () => fileSubject()],
    ['the etcd key (real etcd)', () => etcdSubject(realEtcd(etcd.endpoint), `contract${n++}`, false)],
    ['etcd and a state file combined', () => etcdSubject(realEtcd(etcd.endpoint), `contract${n++}`, true)],
    ['the etcd key (the in-memory coordinator of the fleet simulator)', () => etcdSubject(memoryEtcd(), `contract${n++}`, false)],
  ];

  describe.each(subjects)('%s', (_, make) => {
    const one = { index: 0, count: 1 };
    /** Runs a case on a fresh subject and lets it go afterwards, pass or fail. */
    const withSubject = (run: (subject: Subject) => Promise<void>) => async () => {
      const subject = make();
      try {
        await run(subject);
      } finally {
        await subject.done();
      }
    };

    it('a first start: no floor, firstStart', withSubject(async (subject) => {
      const store = await subject.store(one);
      expect(await store.open()).toEqual({ floor: undefined, firstStart: true });
      await store.close();
    }));

    it('what was saved is the floor after a restart, and R only rises over saves', withSubject(async (subject) => {
      const a = await subject.store(one);
      await a.open();
      await a.save(T + 1000, T);
      await a.save(T + 2000, T + 1000);
      await a.close();
      const b = await subject.store(one);
      expect(await b.open()).toEqual({ floor: T + 2000, firstStart: false });
      await b.close();
    }));

    it('the floor covers every stripe of every worker count stored for the node id', withSubject(async (subject) => {
      const single = await subject.store(one);
      await single.open();
      await single.save(T + 5000, T);
      await single.close();
      // Worker 1 of 2 never ran: nothing of its own, but it starts above what worker 0 of 1 stored.
      const striped = await subject.store({ index: 1, count: 2 });
      const opened = await striped.open();
      expect(opened.floor).toBe(T + 5000);
      expect(opened.firstStart).toBe(subject.ownRecordCanBeLost);
      await striped.save(T + 6000, T + 1000);
      await striped.close();
      const again = await subject.store(one);
      expect((await again.open()).floor).toBe(T + 6000);
      await again.close();
    }));

    it('a save after ownership was taken away rejects with OwnershipLostError, and the stored R stays', withSubject(async (subject) => {
      const store = await subject.store(one);
      await store.open();
      await store.save(T + 1000, T);
      await subject.loseOwnership(one);
      await expect(store.save(T + 2000, T + 1000)).rejects.toBeInstanceOf(OwnershipLostError);
      await store.close();
      const next = await subject.store(one);
      expect((await next.open()).floor).toBe(T + 1000);
      await next.close();
    }));

    it('a damaged record: open() refuses with STATE_CORRUPT', withSubject(async (subject) => {
      const store = await subject.store(one);
      await store.open();
      await store.save(T + 1000, T);
      await store.close();
      await subject.damage(one);
      const next = await subject.store(one);
      const error = await next.open().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HailstoneError);
      expect(error).toMatchObject({ code: 'STATE_CORRUPT' });
      await next.close().catch(() => undefined);
    }));
  });
});
