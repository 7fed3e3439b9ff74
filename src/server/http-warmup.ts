// node:http's request path, run at startup on a private loopback server, so that the id
// server's own answers are fast for the life of the process.
//
// Why: on Node 20, an HTTP server that answers one request, then runs a full garbage
// collection (which an idle process does within seconds), then meets load, serves every
// later request markedly slower for as long as it runs — node:http's and the streams'
// code is then optimized from feedback the collection disrupted (perf shows V8 defining and
// migrating object properties in the runtime on every request). A server probed by a health
// check and left idle is in exactly that history. A couple of thousand requests answered
// before that first collection leave that code optimized from steady feedback, and it stays
// fast whatever collections follow (docs/benchmarks.md, "Against the bare node:http server").
//
// The private server answers a constant with the headers an id answer has, on its own
// port: no id is issued, no counter of the id server moves, and no allowlist, token or rate
// limit of the id server applies to it. The requests are written on raw sockets, as wrk
// writes them: node:http's client would share code with the server (IncomingMessage, the
// parser, OutgoingMessage) and leave it optimized for both. Best effort: if loopback cannot
// be used, the id server is only slower, never wrong.

import { createServer } from 'node:http';
import { type Socket, connect } from 'node:net';

/** Requests run at startup: a few tens of ms of CPU. */
export const WARMUP_REQUESTS = 2000;
/** Keep-alive connections they run on. */
const WARMUP_CONNECTIONS = 16;
const BODY = '253590496008470528\n';
const BODY_BYTES = Buffer.from(BODY, 'latin1');
const REQUEST = Buffer.from('GET /v1/id HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 'latin1');

export interface Warmup {
  /** Settles when the warm-up is over (never rejects). */
  readonly done: Promise<void>;
  /** Ends it early (the id server is closing). */
  stop(): void;
  /** Requests answered so far. */
  answered(): number;
}

/** Starts the warm-up in the background. */
export function warmHttpPath(requests = WARMUP_REQUESTS): Warmup {
  let stopped = false;
  let answered = 0;
  const server = createServer((_req, res) => {
    answered++;
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-length': String(BODY.length) }).end(BODY);
  });
  const sockets = new Set<Socket>();
  const stop = (): void => {
    stopped = true;
    for (const socket of sockets) socket.destroy();
    server.close();
    server.closeAllConnections();
  };
  const run = async (): Promise<void> => {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // exclusive: a cluster worker binds its own port, not one its primary shares among workers.
      server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => resolve());
    });
    server.unref();
    const port = (server.address() as { port: number }).port;
    let left = requests;
    // One connection: a request, its answer (the body ends it), the next request.
    const connection = () =>
      new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        sockets.add(socket);
        // The last bytes received, to see an answer's end: bytes, not text, so the socket's
        // reads take the path the id server's own sockets take.
        let tail = Buffer.alloc(0);
        const next = (): void => {
          if (stopped || left-- <= 0) return void socket.end();
          socket.write(REQUEST);
        };
        socket.on('connect', next);
        socket.on('data', (chunk: Buffer) => {
          tail = Buffer.concat([tail, chunk]).subarray(-BODY_BYTES.length);
          if (!tail.equals(BODY_BYTES)) return;
          tail = Buffer.alloc(0);
          next();
        });
        socket.on('error', () => undefined);
        socket.on('close', () => {
          sockets.delete(socket);
          resolve();
        });
      });
    await Promise.all(Array.from({ length: WARMUP_CONNECTIONS }, connection));
  };
  const done = run()
    .catch(() => undefined)
    .finally(stop);
  return { done, stop, answered: () => answered };
}
