// The ceiling for Node over HTTP on this machine: a bare node:http server answering every
// request with a constant id — the bytes hailstone's GET /v1/id answers with: the same
// headers (an id must not be cached: no-store) and an id-sized body — keep-alive, nothing
// else. What hailstone costs beyond it is then its own work, not a longer answer. Prints its port.
import { createServer } from 'node:http';

const body = '253590496008470528\n';
const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-length': String(body.length) }).end(body);
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => console.log(`bare node:http listening on ${server.address().port}`));
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
});
