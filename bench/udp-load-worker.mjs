// One load-generator thread for bench/udp.ts: keeps `window` requests outstanding on each
// of `sockets` sockets; every reply sends the next request on its slot. Requests are v1
// requests for `count` ids (the echo server just returns them). Plain JavaScript so it
// runs in a worker thread without a loader.
import { createSocket } from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';

// With `rate` set (requests/s), requests go out on a fixed schedule whatever the replies
// (open loop), so two servers can be compared at the same load; otherwise every reply
// sends the next request (closed loop, as fast as the server answers).
const { port, count, sockets: socketCount, window, warmupMs, durationMs, maxReplies, startAt, rate } = workerData;
const size = 24 + 8 * count;
const timeoutMs = 200;
const latencies = new Float64Array(4_000_000);
let samples = 0;
let measuring = false;
let stopped = false;
let requests = 0;
let replies = 0;
let ids = 0;
let lost = 0;

const sockets = [];
const sentAt = [];
const generation = [];
const buffers = [];
const pendingSlot = [];

function send(s, slot) {
  const buf = buffers[s][slot];
  generation[s][slot] = (generation[s][slot] + 1) >>> 0;
  buf.writeUInt32BE(slot, 8);
  buf.writeUInt32BE(generation[s][slot], 12);
  sentAt[s][slot] = performance.now();
  if (measuring) {
    requests++;
    // Open loop: a slot sent again before its reply came back counts that request as lost.
    if (rate !== undefined && pendingSlot[s][slot]) lost++;
  }
  pendingSlot[s][slot] = 1;
  sockets[s].send(buf, 0, size, port, '127.0.0.1');
}

for (let s = 0; s < socketCount; s++) {
  const socket = createSocket('udp4');
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  try {
    socket.setRecvBufferSize(4 * 1024 * 1024);
  } catch {}
  sockets.push(socket);
  sentAt.push(new Float64Array(window));
  generation.push(new Uint32Array(window));
  pendingSlot.push(new Uint8Array(window));
  buffers.push(
    Array.from({ length: window }, () => {
      const b = Buffer.alloc(size);
      b[0] = 0x48; b[1] = 0x53; b[2] = 1; b[3] = 1; // "HS", v1, REQUEST
      b.writeUInt16BE(count, 6);
      b.writeBigUInt64BE(BigInt(Date.now()), 16);
      return b;
    }),
  );
  socket.on('message', (msg) => {
    if (msg.length < 24) return;
    const slot = msg.readUInt32BE(8);
    if (slot >= window || msg.readUInt32BE(12) !== generation[s][slot]) return; // a late duplicate
    pendingSlot[s][slot] = 0;
    if (measuring) {
      replies++;
      ids += msg.readUInt16BE(6);
      if (samples < latencies.length) latencies[samples++] = performance.now() - sentAt[s][slot];
    }
    if (!stopped && rate === undefined) send(s, slot);
  });
}

// All threads start together.
await new Promise((r) => setTimeout(r, Math.max(0, startAt - Date.now())));
let scheduled;
if (rate === undefined) {
  for (let s = 0; s < socketCount; s++) for (let w = 0; w < window; w++) send(s, w);
} else {
  // Open loop: send what is due every 1 ms turn, round-robin over sockets and slots.
  const t0 = performance.now();
  let due = 0;
  let next = 0;
  scheduled = setInterval(() => {
    const target = Math.floor(((performance.now() - t0) / 1000) * rate);
    for (; due < target; due++, next++) send(next % socketCount, Math.floor(next / socketCount) % window);
  }, 1);
}
const sweep = setInterval(() => {
  if (rate !== undefined) return; // open loop: an unanswered slot is simply reused
  const now = performance.now();
  for (let s = 0; s < socketCount; s++) {
    for (let w = 0; w < window; w++) {
      if (now - sentAt[s][w] > timeoutMs) {
        if (measuring) lost++;
        send(s, w);
      }
    }
  }
}, 50);

await new Promise((r) => setTimeout(r, warmupMs));
parentPort.postMessage({ type: 'measuring' });
measuring = true;
const start = performance.now();
while (performance.now() - start < durationMs && (maxReplies === undefined || replies < maxReplies)) {
  await new Promise((r) => setTimeout(r, 20));
}
measuring = false;
const seconds = (performance.now() - start) / 1000;
stopped = true;
clearInterval(sweep);
if (scheduled !== undefined) clearInterval(scheduled);
await Promise.all(sockets.map((s) => new Promise((r) => s.close(r))));
parentPort.postMessage({ type: 'done', requests, replies, ids, lost, seconds, latencies: latencies.slice(0, samples) });
