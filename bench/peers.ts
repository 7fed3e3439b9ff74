// The npm peers, each through its normal API, as functions returning one id.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface Peer {
  name: string;
  /** One id per call, as the package returns it (bigint, string or Buffer). Throws when it refuses. */
  next: () => unknown;
  /** The id as a comparable key, for counting duplicates. */
  key: (id: unknown) => string | bigint;
  /** The most ids per second its layout allows. */
  cap: number;
}

export function loadPeers(): Peer[] {
  const { Snowflake: RustSnowflake } = require('nodejs-snowflake') as { Snowflake: new (o: object) => { getUniqueID(): bigint } };
  const { Snowflake: SapphireSnowflake } = require('@sapphire/snowflake') as {
    Snowflake: new (epoch: number) => { generate(o?: object): bigint };
  };
  const FlakeId = require('flake-idgen') as new (o: object) => { next(): Buffer };
  const SnowflakeId = (require('snowflake-id') as { default: new (o: object) => { generate(): string } }).default;

  const epoch = Date.UTC(2025, 0, 1);
  const rust = new RustSnowflake({ custom_epoch: epoch, instance_id: 7 });
  const sapphire = new SapphireSnowflake(epoch);
  const flake = new FlakeId({ id: 7, epoch });
  const sid = new SnowflakeId({ mid: 7, offset: epoch });
  return [
    { name: 'nodejs-snowflake getUniqueID()', next: () => rust.getUniqueID(), key: (id) => id as bigint, cap: 1_024_000 },
    { name: '@sapphire/snowflake generate()', next: () => sapphire.generate({ workerId: 1n, processId: 7n }), key: (id) => id as bigint, cap: 4_096_000 },
    { name: 'flake-idgen next()', next: () => flake.next(), key: (id) => (id as Buffer).toString('hex'), cap: 4_096_000 },
    { name: 'snowflake-id generate()', next: () => sid.generate(), key: (id) => id as string, cap: 4_096_000 },
  ];
}
