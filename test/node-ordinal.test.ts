// --node-id ordinal: a StatefulSet's pod takes its node id from the trailing -N of its host
// name (HAILSTONE_HOSTNAME stands in for the host name here); a name without one, or past
// the largest node id, is bad usage naming the host name.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeIdFromOrdinal } from '../src/node/ordinal.js';
import { runCli } from './support/child.js';
import { startServe } from './support/serve-process.js';

const root = mkdtempSync(join(tmpdir(), 'hailstone-ordinal-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('the node id from the host name ordinal', () => {
  it.each([
    ['hailstone-0', 0],
    ['hailstone-7', 7],
    ['ids-eu-west-1023', 1023],
    ['web-3-12', 12],
  ])('%s: %i', (name, id) => {
    expect(nodeIdFromOrdinal(1023, name)).toBe(id);
  });

  it.each([
    ['hailstone', /does not end in -N/],
    ['hailstone-', /does not end in -N/],
    ['hailstone-1024', /ends in 1024, past the largest node id 1023: run at most 1024 replicas/],
    ['hailstone-99999999999999999999', /past the largest node id/],
  ])('%s: refused', (name, message) => {
    expect(() => nodeIdFromOrdinal(1023, name)).toThrow(message);
  });

  it('serve --node-id ordinal serves as node N of a pod named NAME-N', async () => {
    const s = await startServe(['--node-id', 'ordinal', '--port', '0', '--state-dir', join(root, 'seven'), '--max-lead-ms', '100'], { HAILSTONE_HOSTNAME: 'hailstone-7' });
    expect(s.stdout()).toMatch(/ node=7 /);
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });

  it.each([
    ['web', /--node-id .*ordinal: the host name "web" does not end in -N/],
    ['hailstone-2000', /--node-id .*ordinal: the host name "hailstone-2000" ends in 2000, past the largest node id 1023/],
  ])('HAILSTONE_NODE_ID=ordinal on host %s: exit 2, the host name named', async (name, message) => {
    const r = await runCli(['serve', '--port', '0', '--state-dir', join(root, 'bad')], { HAILSTONE_HOSTNAME: name, HAILSTONE_NODE_ID: 'ordinal' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
