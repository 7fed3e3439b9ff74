// Ids over HTTP: the routes, their answers and their errors, apart from the sockets (see
// http-server.ts), so they can be read and tested as plain functions.
//
//   GET /v1/ids?count=N   200 application/json {"ids":["…", …]} — decimal strings, since
//                         JSON numbers lose digits past 2^53 in JavaScript and elsewhere;
//                         with Accept: text/plain, one id per line
//   GET /v1/id            200 text/plain, one id and a newline
//
// Every error is JSON, {"error":{"code","message"}}, and never a partial body: the ids are
// issued (all of them, or none) before a byte is written. Refusals are 503 with Retry-After
// (whole seconds, rounded up) and retryAfterMs in the body.

import type { ServingNode } from './server.js';

/**
 * The most ids one request may ask for. Larger than UDP's 149 (a datagram must fit one
 * unfragmented packet; a TCP stream need not): one request of 4096 ids costs about what a
 * request of one does in parsing and headers, so batches are where HTTP's throughput is.
 */
export const HTTP_MAX_IDS = 4096;

/** The route labels metrics count requests by (anything else is "other"). */
export type RouteLabel = '/v1/ids' | '/v1/id' | '/metrics' | '/healthz' | 'other';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** How many ids the answer carries (for metrics). */
  ids?: number;
  /** An answer to HEAD: no body, and no Content-Length (a GET's would differ). */
  head?: true;
}

/** A tryFill buffer large enough for one request's ids; one per server, reused. */
export function idScratch(): Buffer {
  return Buffer.alloc(8 * HTTP_MAX_IDS);
}

const JSON_TYPE = 'application/json';
export const TEXT_TYPE = 'text/plain; charset=utf-8';
/** Ids are never the same twice: no cache may keep one. */
const NO_STORE = 'no-store';

/** The JSON error body every failure answers with. */
export function errorAnswer(status: number, code: string, message: string, extra: { retryAfterMs?: number; headers?: Record<string, string> } = {}): HttpAnswer {
  const headers: Record<string, string> = { 'content-type': JSON_TYPE, 'cache-control': NO_STORE, ...extra.headers };
  const error: { code: string; message: string; retryAfterMs?: number } = { code, message };
  if (extra.retryAfterMs !== undefined) {
    error.retryAfterMs = extra.retryAfterMs;
    headers['retry-after'] = String(Math.max(1, Math.ceil(extra.retryAfterMs / 1000)));
  }
  return { status, headers, body: `${JSON.stringify({ error })}\n` };
}

/** Which route a path is, for metrics and for choosing a handler. */
export function routeOf(path: string): RouteLabel {
  return path === '/v1/ids' || path === '/v1/id' || path === '/metrics' || path === '/healthz' ? path : 'other';
}

/**
 * The count a query asks for: 1 when it names none; a string saying what is wrong when it
 * is not one decimal integer from 1 to HTTP_MAX_IDS.
 */
export function countOf(query: string): number | string {
  let found: string | undefined;
  if (query !== '') {
    for (const pair of query.split('&')) {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      if (name !== 'count') continue;
      if (found !== undefined) return 'count is given more than once';
      found = eq < 0 ? '' : pair.slice(eq + 1);
    }
  }
  if (found === undefined) return 1;
  // Percent-encoding is the client's spelling, not the value: count=%35 asks for 5.
  const value = decodeSafely(found);
  if (!/^[1-9]\d{0,5}$/.test(value) || Number(value) > HTTP_MAX_IDS) {
    return `count must be an integer from 1 to ${HTTP_MAX_IDS}, got ${JSON.stringify(value.slice(0, 40))}`;
  }
  return Number(value);
}

function decodeSafely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Whether the client asked for text rather than JSON (Accept naming text/plain and not JSON). */
export function wantsText(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('text/plain') && !accept.includes(JSON_TYPE);
}

/**
 * Issues `count` ids from the source's node into `scratch`: all of them, or a refusal
 * (503) if the node issues none. When the node stops part way (its lead or reservation
 * ran out within this request), the ids already written are answered: fewer than asked,
 * as a UDP reply may carry fewer, never an error that would drop ids already issued.
 */
export function issue(source: ServingNode, scratch: Buffer, count: number): number | HttpAnswer {
  const node = source.node();
  if (node === undefined) return startingAnswer(source);
  let written = 0;
  while (written < count) {
    const n = node.tryFill(scratch, 8 * written, count - written);
    if (n > 0) {
      written += n;
      continue;
    }
    if (written > 0) break;
    if (n === 0) {
      // Not a status tryFill returns; should it ever, the loop must not spin.
      const retryAfterMs = source.retryAfterMs();
      return errorAnswer(503, 'UNAVAILABLE', 'the node issued no id', { retryAfterMs });
    }
    const error = node.refusalOf(n);
    const retryAfterMs = source.retryAfterMs(n);
    return errorAnswer(503, error.code, error.message, { retryAfterMs });
  }
  return written;
}

/** `n` ids from `scratch` as decimal strings: a JSON body, or one per line. */
export function idsAnswer(scratch: Buffer, n: number, text: boolean): HttpAnswer {
  const ids = new Array<string>(n);
  for (let i = 0; i < n; i++) ids[i] = String(scratch.readBigUInt64BE(8 * i));
  return text
    ? { status: 200, headers: { 'content-type': TEXT_TYPE, 'cache-control': NO_STORE }, body: `${ids.join('\n')}\n`, ids: n }
    : { status: 200, headers: { 'content-type': JSON_TYPE, 'cache-control': NO_STORE }, body: `{"ids":["${ids.join('","')}"]}\n`, ids: n };
}

/** 503 STARTING while the server's node is not open yet, with its real remaining wait. */
function startingAnswer(source: ServingNode): HttpAnswer {
  const retryAfterMs = source.retryAfterMs();
  return errorAnswer(503, 'STARTING', `the server is starting: ids are served in ${retryAfterMs} ms`, { retryAfterMs });
}

/** How many ids an id route asks for: one for /v1/id, the query's count for /v1/ids, or a 400. */
function requestedCount(route: '/v1/id' | '/v1/ids', query: string): number | HttpAnswer {
  const count = route === '/v1/ids' ? countOf(query) : 1;
  return typeof count === 'string' ? errorAnswer(400, 'BAD_REQUEST', count) : count;
}

/** The methods the id routes answer. */
export const ID_ROUTE_METHODS = 'GET, HEAD';

/**
 * HEAD on an id route, for load balancers' health probes: the status and headers a GET
 * would get now — 200, or 503 with its Retry-After — with no body, and no id issued.
 */
export function headAnswer(route: '/v1/id' | '/v1/ids', query: string, source: ServingNode): HttpAnswer {
  // A count a GET would refuse is refused here too.
  const count = requestedCount(route, query);
  if (typeof count !== 'number') return count;
  const node = source.node();
  if (node === undefined) return startingAnswer(source);
  const status = node.status();
  if (!status.healthy) {
    return errorAnswer(503, 'UNAVAILABLE', `the node cannot issue ids now: ${status.reason ?? 'unhealthy'}`, { retryAfterMs: status.retryAfterMs ?? source.retryAfterMs() });
  }
  return { status: 200, headers: { 'content-type': route === '/v1/id' ? TEXT_TYPE : JSON_TYPE, 'cache-control': NO_STORE }, body: '', head: true };
}

/** The answer to an id route (GET or HEAD /v1/id, /v1/ids), or a 400/405/503 error. */
export function answerIdRoute(route: '/v1/id' | '/v1/ids', method: string | undefined, query: string, accept: string | undefined, source: ServingNode, scratch: Buffer): HttpAnswer {
  if (method === 'HEAD') return headAnswer(route, query, source);
  if (method !== 'GET') {
    return errorAnswer(405, 'METHOD_NOT_ALLOWED', `${route} answers GET and HEAD only, not ${method ?? 'no method'}`, { headers: { allow: ID_ROUTE_METHODS } });
  }
  const count = requestedCount(route, query);
  if (typeof count !== 'number') return count;
  const n = issue(source, scratch, count);
  // GET /v1/id is GET /v1/ids?count=1 as text. (The server writes these same bytes on a
  // fast path without the answer object: http-server.ts.)
  return typeof n === 'number' ? idsAnswer(scratch, n, route === '/v1/id' || wantsText(accept)) : n;
}

export function notFound(path: string): HttpAnswer {
  return errorAnswer(404, 'NOT_FOUND', `no route ${JSON.stringify(path.slice(0, 100))}: try GET /v1/ids?count=N or GET /v1/id`);
}
