// Builds the native addons at install time: the UDP transport (recvmmsg/sendmmsg) and the
// kernel lock (flock). Optional by design: without a compiler, on another OS, or with
// HAILSTONE_SKIP_NATIVE=1, it says why and succeeds; the server then uses Node's dgram and
// the portable lock file alone. Installation never fails because of it.
//
// What happened is written to native/build/status.json, so the server can later say the
// same reason (skipped, no compiler, the compiler's own error) instead of guessing; a
// failed build's whole output is kept beside it in build.log.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const buildDir = join(here, 'build');
const statusFile = join(buildDir, 'status.json');
const logFile = join(buildDir, 'build.log');
const retry = 'then run `npm rebuild hailstone`';

function record(status) {
  // An addon left from an earlier build must not outlive a build that did not happen: the
  // server would load it while the status says otherwise.
  if (!status.built) rmSync(join(buildDir, 'Release'), { recursive: true, force: true });
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(statusFile, `${JSON.stringify({ ...status, node: process.version, at: new Date().toISOString() })}\n`);
}

function skip(reason) {
  record({ built: false, reason });
  process.stderr.write(`hailstone: native addons not built: ${reason}; the server will use dgram and the portable lock file\n`);
  process.exit(0);
}

if (process.env.HAILSTONE_SKIP_NATIVE === '1') skip('skipped at install (HAILSTONE_SKIP_NATIVE=1)');
if (process.platform !== 'linux') skip(`recvmmsg/sendmmsg and this flock addon need Linux, this is ${process.platform}`);

// node-gyp needs a C compiler and make; say which is missing rather than let it fail later.
const cc = process.env.CC ?? 'cc';
for (const [tool, args, what] of [
  [cc, ['--version'], `no C compiler (${cc}) on the PATH: install one (Debian/Ubuntu: apt-get install build-essential), ${retry}`],
  ['make', ['--version'], `no make on the PATH: install it (Debian/Ubuntu: apt-get install build-essential), ${retry}`],
]) {
  const probe = spawnSync(tool, args, { stdio: 'ignore' });
  if (probe.error) skip(what);
}

// npm names its bundled node-gyp in npm_config_node_gyp for lifecycle scripts; run by
// hand, use the one bundled with this Node's npm, else whatever the PATH has.
const bundled = join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const gyp = process.env.npm_config_node_gyp ?? (existsSync(bundled) ? bundled : undefined);
const [command, args] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
// Build against the headers of the Node that runs this (no download: installs may be
// offline). npm passes its configured nodedir; otherwise use the running Node's prefix.
const prefix = dirname(dirname(process.execPath));
const nodedir = process.env.npm_config_nodedir ?? (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
const nodedirArgs = nodedir === undefined ? [] : [`--nodedir=${nodedir}`];
const result = spawnSync(command, [...args, 'rebuild', '--directory', here, ...nodedirArgs], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
if (result.error) skip(`could not run node-gyp (${result.error.message}): install it (npm install -g node-gyp), ${retry}`);
if (result.status !== 0) {
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(logFile, output);
  skip(`the build failed: ${firstCause(output) ?? `node-gyp exited with ${result.status ?? result.signal}`} (whole output: ${logFile})`);
}
const addons = ['hailstone_udp', 'hailstone_lock'].filter((name) => existsSync(join(buildDir, 'Release', `${name}.node`)));
record({ built: true, addons });
if (process.env.npm_config_loglevel === 'verbose' || process.env.npm_config_foreground_scripts === 'true') process.stderr.write(output);
process.stderr.write(`hailstone: native addons built (${addons.join(', ')})\n`);

/** The line of a failed build that says why: the compiler's or make's first error, else gyp's. */
function firstCause(text) {
  const lines = text.split('\n').map((l) => l.trim());
  return (
    lines.find((l) => /(^|: )(fatal )?error: /.test(l) && !l.startsWith('gyp')) ??
    lines.find((l) => /No rule to make target|not found|command not found/.test(l)) ??
    lines.find((l) => l.startsWith('gyp ERR! stack Error:')) ??
    lines.find((l) => l.startsWith('gyp ERR!'))
  );
}
