// A bare dgram echo server: the floor any Node UDP server stands on. It answers every
// datagram with the same bytes, so its replies are as large as hailstone's.
//   node bench/echo-server.mjs [--workers N]
import cluster from 'node:cluster';
import { createSocket } from 'node:dgram';

const workers = Number(process.argv[process.argv.indexOf('--workers') + 1] || 1);

if (workers > 1 && cluster.isPrimary) {
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('message', (m) => {
      if (++ready === workers) process.stdout.write(`echo listening on ${m.port}\n`);
    });
  }
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers)) w.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => socket.send(msg, rinfo.port, rinfo.address));
  socket.bind({ port: 0, address: '127.0.0.1', exclusive: false }, () => {
    try {
      socket.setRecvBufferSize(4 * 1024 * 1024);
    } catch {}
    const port = socket.address().port;
    if (process.send) process.send({ port });
    else process.stdout.write(`echo listening on ${port}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}
