// The port guard on its own: one holder per port, released by the kernel when its process
// dies however it dies, a holder that cannot answer still keeps the port, and a port bound
// by some other program is not handed to workers.

import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { askHolder, holdPort, reservePortForWorkers } from '../src/server/port-guard.js';
import { collectText, exited, spawnFixture, waitFor } from './support/child.js';

/** A port the kernel says is free right now (UDP), to guard in a test. */
async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe.runIf(process.platform === 'linux')('port guard', () => {
  it('one holder per port: a second is refused naming the first; after close the port can be held again', async () => {
    const port = await freePort();
    const first = await holdPort(port, { address: `127.0.0.1:${port}`, nodeId: 4, workers: 2 });
    await expect(holdPort(port, { address: `127.0.0.1:${port}`, workers: 1 })).rejects.toMatchObject({
      code: 'PORT_IN_USE',
      message: `UDP port ${port} is held by the hailstone server with pid ${process.pid} (serving 127.0.0.1:${port} as node 4, 2 workers): stop it, or choose another port (--port)`,
    });
    expect(await askHolder(port)).toEqual({ address: `127.0.0.1:${port}`, nodeId: 4, workers: 2, pid: process.pid });
    await first.close();
    expect(await askHolder(port)).toBeUndefined();
    const again = await holdPort(port, { address: `127.0.0.1:${port}`, workers: 1 });
    await again.close();
  });

  it('a holder killed with SIGKILL leaves nothing behind; one stopped with SIGSTOP keeps the port and is named as silent', async () => {
    const port = await freePort();
    const child = spawnFixture('hold-port.ts', [String(port)]);
    const out = collectText(child.stdout!);
    await waitFor(() => out.text().includes(`held ${port}`), { what: 'the fixture to hold the port', child });
    const holder = await askHolder(port);
    expect(holder).toMatchObject({ pid: child.pid, nodeId: 7, workers: 3 });

    process.kill(child.pid!, 'SIGSTOP');
    const started = Date.now();
    const refused = await holdPort(port, { address: `127.0.0.1:${port}`, workers: 1 }).catch((e: unknown) => e);
    // It cannot answer, but the kernel still knows whose socket it is.
    expect(refused).toMatchObject({ code: 'PORT_IN_USE', message: expect.stringContaining(`held by the hailstone server with pid ${child.pid}, which does not answer (stopped with SIGSTOP, or frozen)`) });
    expect(Date.now() - started).toBeLessThan(5000);

    process.kill(child.pid!, 'SIGKILL');
    await exited(child);
    const taken = await holdPort(port, { address: `127.0.0.1:${port}`, workers: 1 });
    await taken.close();
  });

  it('workers are not given a port that another program has bound, even when nobody holds its guard', async () => {
    const other = createSocket('udp4');
    await new Promise<void>((resolve) => other.bind(0, '127.0.0.1', resolve));
    const port = other.address().port;
    const error = await reservePortForWorkers('127.0.0.1', port, { workers: 2 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'PORT_IN_USE', message: expect.stringContaining(`UDP port ${port} on 127.0.0.1 is in use by another process that is not a running hailstone server`) });
    // It let the guard go again.
    expect(await askHolder(port)).toBeUndefined();
    await new Promise<void>((resolve) => other.close(() => resolve()));
    const guard = await reservePortForWorkers('127.0.0.1', port, { workers: 2 });
    expect(guard.port).toBe(port);
    await guard.close();
  });

  it('port 0: a free port is picked and guarded', async () => {
    const guard = await reservePortForWorkers('127.0.0.1', 0, { workers: 2 });
    expect(guard.port).toBeGreaterThan(0);
    expect(await askHolder(guard.port)).toMatchObject({ pid: process.pid, address: `127.0.0.1:${guard.port}` });
    await guard.close();
  });
});
