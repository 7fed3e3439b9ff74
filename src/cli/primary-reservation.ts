// A worker's side of its node's one reservation (src/fleet/node-reservation.ts): the
// primary holds the claim and writes the node's key in etcd for every worker; a worker asks
// it over the IPC channel for the floor to start from and for each R it wants, and issues
// only once the primary says etcd acknowledged it. No worker opens a connection to etcd.

import { RemoteReservationError, type ReservationLink, receivedFailure } from '../fleet/node-reservation.js';
import type { StoredFloor } from '../node/store.js';
import type { FromWorker, SentClaim, ToWorker } from './worker-messages.js';

type Answer = Extract<ToWorker, { type: 'reservation' }>;

export class PrimaryReservations {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (answer: Answer) => void; reject: (error: Error) => void }>();

  constructor(
    /** Sends to the primary; false when the channel is gone. */
    private readonly send: (message: FromWorker) => boolean,
  ) {}

  /** The node's reservation under this claim, through the primary. */
  linkFor(claim: SentClaim): ReservationLink {
    const ask = async (until: number | undefined): Promise<Answer> => {
      const answer = await this.ask(claim.createRevision, until);
      if (answer.failure !== undefined) throw receivedFailure(answer.failure);
      return answer;
    };
    return {
      open: async (): Promise<StoredFloor> => (await ask(undefined)).floor ?? { floor: undefined, firstStart: true },
      reserve: async (until: number): Promise<number> => {
        const { reserved } = await ask(until);
        if (reserved === undefined || !(reserved >= until)) throw new RemoteReservationError('the primary answered a reservation without its R', undefined);
        return reserved;
      },
      describeFailure: (error) => (error instanceof RemoteReservationError ? error.described : undefined),
    };
  }

  /** An answer from the primary. */
  answer(message: Answer): void {
    const waiter = this.pending.get(message.id);
    this.pending.delete(message.id);
    waiter?.resolve(message);
  }

  /** The primary is gone: nothing asked of it will be answered. */
  failAll(reason: string): void {
    for (const waiter of this.pending.values()) waiter.reject(new RemoteReservationError(reason, `the primary process is gone (${reason})`));
    this.pending.clear();
  }

  private ask(createRevision: string, until: number | undefined): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      if (!this.send({ type: 'reservation', id, createRevision, ...(until === undefined ? {} : { until }) })) {
        this.pending.delete(id);
        reject(new RemoteReservationError('the primary process is gone', 'the primary process is gone'));
      }
    });
  }
}
