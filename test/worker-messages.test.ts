// The environment a --workers primary forks each worker with: what workerEnv writes,
// readWorkerEnv reads back, and anything else is refused by name rather than guessed at.

import { describe, expect, it } from 'vitest';
import { readWorkerEnv, workerEnv } from '../src/cli/worker-messages.js';

describe('the worker environment', () => {
  it('reads back what the primary wrote, without the claim\'s callback', () => {
    const claim = { nodeId: 7, key: 'hailstone/default/claims/7', createRevision: '42', lose: () => undefined };
    const env = workerEnv({ index: 1, transport: 'native', host: '::1', port: 7077, claim });
    expect(JSON.parse(env.HAILSTONE_FLEET_CLAIM!)).toEqual({ nodeId: 7, key: 'hailstone/default/claims/7', createRevision: '42' });
    expect(readWorkerEnv(2, env)).toEqual({ index: 1, transport: 'native', host: '::1', port: 7077, claim: { nodeId: 7, key: 'hailstone/default/claims/7', createRevision: '42' } });
    expect(readWorkerEnv(1, workerEnv({ index: 0, transport: 'dgram', host: '127.0.0.1', port: 0, claim: undefined }))).toEqual({
      index: 0,
      transport: 'dgram',
      host: '127.0.0.1',
      port: 0,
      claim: undefined,
    });
  });

  const good = workerEnv({ index: 0, transport: 'dgram', host: '127.0.0.1', port: 7077, claim: undefined });
  it.each([
    [{ HAILSTONE_WORKER_INDEX: undefined }, /HAILSTONE_WORKER_INDEX must be an integer from 0 to 1/],
    [{ HAILSTONE_WORKER_INDEX: '2' }, /HAILSTONE_WORKER_INDEX must be an integer from 0 to 1, got "2"/],
    [{ HAILSTONE_WORKER_INDEX: '-1' }, /HAILSTONE_WORKER_INDEX/],
    [{ HAILSTONE_WORKER_PORT: '70000' }, /HAILSTONE_WORKER_PORT must be an integer from 0 to 65535/],
    [{ HAILSTONE_WORKER_PORT: '' }, /HAILSTONE_WORKER_PORT/],
    [{ HAILSTONE_WORKER_TRANSPORT: 'auto' }, /HAILSTONE_WORKER_TRANSPORT must be native or dgram/],
    [{ HAILSTONE_WORKER_HOST: '' }, /HAILSTONE_WORKER_HOST/],
    [{ HAILSTONE_FLEET_CLAIM: 'not json' }, /HAILSTONE_FLEET_CLAIM must be/],
    [{ HAILSTONE_FLEET_CLAIM: '{"nodeId":"7","key":"k","createRevision":"1"}' }, /HAILSTONE_FLEET_CLAIM must be/],
    [{ HAILSTONE_FLEET_CLAIM: 'null' }, /HAILSTONE_FLEET_CLAIM must be/],
  ])('%j is refused', (change, message) => {
    expect(() => readWorkerEnv(2, { ...good, ...change })).toThrow(message);
  });
});
