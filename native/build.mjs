// Builds the native addons at install time: the UDP transport (recvmmsg/sendmmsg) and the
// kernel lock (flock). Optional by design: without a compiler, on another OS, or with
// HAILSTONE_SKIP_NATIVE=1, it says why and succeeds; the server then uses Node's dgram and
// the portable lock file alone. Installation never fails because of it.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

function skip(reason) {
  process.stderr.write(`hailstone: native addons not built (${reason}); the server will use dgram and the portable lock file\n`);
  process.exit(0);
}

if (process.env.HAILSTONE_SKIP_NATIVE === '1') skip('HAILSTONE_SKIP_NATIVE=1');
if (process.platform !== 'linux') skip(`recvmmsg/sendmmsg need Linux, this is ${process.platform}`);

// npm puts its bundled node-gyp on the PATH of lifecycle scripts and names it in
// npm_config_node_gyp; outside npm, try the PATH.
const gyp = process.env.npm_config_node_gyp;
const [command, args] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
// Build against the headers of the Node that runs this (no download: installs may be
// offline). npm passes its configured nodedir; otherwise use the running Node's prefix.
const prefix = dirname(dirname(process.execPath));
const nodedir = process.env.npm_config_nodedir ?? (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
const nodedirArgs = nodedir === undefined ? [] : [`--nodedir=${nodedir}`];
const result = spawnSync(command, [...args, 'rebuild', '--directory', here, ...nodedirArgs], { stdio: ['ignore', 'inherit', 'inherit'] });
if (result.error) skip(`could not run node-gyp: ${result.error.message}`);
if (result.status !== 0) skip(`node-gyp exited with ${result.status ?? result.signal}`);
