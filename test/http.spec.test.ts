// docs/openapi.yaml against the tools integrators run on it, and against what a real
// `hailstone serve --http` sends: swagger-parser validates it, Redocly's linter passes it
// with its recommended-strict rules, and every answer of a running server — every route,
// every error the spec lists — is checked against the spec's declared status, media type,
// body schema (ajv, JSON Schema 2020-12, as OpenAPI 3.1 uses) and required headers. The
// spec and the server cannot drift apart without this file failing.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { createConfig, lint } from '@redocly/openapi-core';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/child.js';
import { parseResponses, rawConnection } from './support/http.js';
import { spawnServe } from './support/serve-process.js';

const SPEC = 'docs/openapi.yaml';
const root = mkdtempSync(join(tmpdir(), 'hailstone-spec-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface MediaType {
  schema?: object;
}
interface HeaderObject {
  required?: boolean;
  schema?: { type?: string; const?: string; minimum?: number };
}
interface ResponseObject {
  headers?: Record<string, HeaderObject>;
  content?: Record<string, MediaType>;
}
interface Spec {
  paths: Record<string, Record<string, { responses: Record<string, ResponseObject> }>>;
  components: { schemas: Record<string, object> };
}

/** An answer as it came off the wire: status, headers (lower-case names) and body. */
interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

describe('docs/openapi.yaml', () => {
  it('passes swagger-parser validate()', async () => {
    await expect(SwaggerParser.validate(SPEC)).resolves.toBeDefined();
  });

  it("passes Redocly's linter with the recommended-strict rules: no error, no warning", async () => {
    const config = await createConfig({ extends: ['recommended-strict'] });
    const problems = await lint({ ref: SPEC, config });
    expect(problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} (${p.location[0]?.pointer ?? ''})`)).toEqual([]);
    // The rules really ran: the same linter and rules flag a spec with known problems (no
    // license, no servers, an operation without a 4xx answer).
    const broken = join(root, 'broken.yaml');
    writeFileSync(broken, 'openapi: 3.1.0\ninfo: { title: x, version: "1" }\npaths:\n  /x:\n    get:\n      responses:\n        "200": { description: ok }\n');
    expect((await lint({ ref: broken, config })).length).toBeGreaterThan(0);
  });
});

describe('a running server answers as docs/openapi.yaml says', () => {
  let spec: Spec;
  let server: ReturnType<typeof spawnServe>;
  let url: string;
  let port: number;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const seen = new Set<string>();

  beforeAll(async () => {
    spec = (await SwaggerParser.dereference(SPEC)) as unknown as Spec;
    const token = join(root, 'token');
    writeFileSync(token, 'spec-token-0123456789abcdef\n', { mode: 0o600 });
    // A fresh state dir: the first answers are 503 STARTING for one lead window. A rate limit
    // and a token, so 429 and 401 can be asked for; short HTTP timeouts for 408.
    // Not startServe, which returns at the UDP line (printed once ids are served).
    server = spawnServe([
      '--port', '0', '--state-dir', join(root, 'state'), '--max-lead-ms', '1500', '--http', '0',
      '--http-token-file', token, '--rate-limit', '200', '--http-headers-timeout-ms', '300', '--http-request-timeout-ms', '300',
    ], {}, { scope: 'file' });
    port = Number((await waitFor(() => /hailstone listening on http:\/\/127\.0\.0\.1:(\d+)\n/.exec(server.stdout()) ?? undefined, { what: 'the HTTP line' }))[1]);
    url = `http://127.0.0.1:${port}`;
  }, 30_000);

  afterAll(async () => {
    if (server !== undefined && server.child.exitCode === null) {
      server.child.kill('SIGTERM');
      await server.done;
    }
  });

  const AUTH = { authorization: 'Bearer spec-token-0123456789abcdef' };

  async function get(path: string, headers: Record<string, string> = AUTH, method = 'GET'): Promise<Answer> {
    const r = await fetch(`${url}${path}`, { method, headers });
    return { status: r.status, headers: Object.fromEntries(r.headers), body: await r.text() };
  }

  /**
   * A request asked until it is answered 200 (each answer on the way checked too): after the
   * first start, and whenever a loaded machine has the node extending its reservation.
   */
  async function ok(path: string, headers: Record<string, string> = AUTH, method = 'GET'): Promise<Answer> {
    return waitFor(
      async () => {
        const a = await get(path, headers, method);
        if (a.status === 200) return a;
        conforms(a, path.split('?')[0], method.toLowerCase());
        return undefined;
      },
      { what: `${method} ${path} answered 200`, timeoutMs: 20_000 },
    );
  }

  /** A request written byte for byte, for what fetch cannot send (bad HTTP, huge headers, slowness). */
  async function raw(request: string, holdMs = 0): Promise<Answer> {
    const c = await rawConnection(port);
    c.write(request);
    if (holdMs > 0) await new Promise((r) => setTimeout(r, holdMs));
    await c.closed;
    const [reply] = parseResponses(c.received());
    expect(reply, `an answer to ${JSON.stringify(request.slice(0, 60))}`).toBeDefined();
    return { status: reply!.status, headers: reply!.headers, body: reply!.body };
  }

  /** Checks one answer against the operation (path, method) in the spec; `undefined` for a path outside it. */
  function conforms(answer: Answer, path: string | undefined, method = 'get'): void {
    const where = `${method.toUpperCase()} ${path ?? '(no route)'} → ${answer.status}`;
    seen.add(`${method} ${path ?? '-'} ${answer.status}`);
    const type = (answer.headers['content-type'] ?? '').split(';')[0]!.trim();
    let response: ResponseObject | undefined;
    if (path === undefined) {
      // Paths outside the spec: its description says they are the same JSON error.
      response = { content: { 'application/json': { schema: spec.components.schemas.Error! } } };
    } else {
      response = spec.paths[path]?.[method]?.responses[String(answer.status)];
      expect(response, `${where}: the status is declared`).toBeDefined();
    }
    if (method === 'head') {
      expect(answer.body, `${where}: no body`).toBe('');
    } else {
      conformsBody(answer, response!, type, where);
    }
    for (const [name, header] of Object.entries(response!.headers ?? {})) {
      const value = answer.headers[name.toLowerCase()];
      if (header.required === true) expect(value, `${where}: the required header ${name}`).toBeDefined();
      if (value === undefined || header.schema === undefined) continue;
      const typed = header.schema.type === 'integer' ? Number(value) : value;
      const validate = ajv.compile(header.schema);
      expect(validate(typed) ? [] : validate.errors, `${where}: header ${name}: ${value}`).toEqual([]);
    }
  }

  function conformsBody(answer: Answer, response: ResponseObject, type: string, where: string): void {
    const media = response.content?.[type];
    expect(media, `${where}: ${type} is a declared media type (${Object.keys(response.content ?? {}).join(', ')})`).toBeDefined();
    if (media!.schema !== undefined) {
      const value = type === 'application/json' ? JSON.parse(answer.body) : answer.body;
      const validate = ajv.compile(media!.schema);
      expect(validate(value) ? [] : validate.errors, `${where}: the body matches its schema: ${answer.body.slice(0, 200)}`).toEqual([]);
    }
  }

  it('503 STARTING while the first start waits, then 200 on both routes, text and JSON', async () => {
    const first = await get('/v1/id');
    expect(first.status).toBe(503);
    conforms(first, '/v1/id');
    conforms(await get('/v1/id', AUTH, 'HEAD'), '/v1/id', 'head');
    conforms(await get('/v1/ids', AUTH, 'HEAD'), '/v1/ids', 'head');
    conforms(await get('/v1/ids?count=3'), '/v1/ids');
    conforms(await ok('/v1/ids?count=3'), '/v1/ids');
    conforms(await ok('/v1/id'), '/v1/id');
    conforms(await ok('/v1/ids?count=4096', { ...AUTH, accept: 'text/plain' }), '/v1/ids');
    conforms(await ok('/v1/ids', AUTH, 'HEAD'), '/v1/ids', 'head');
    conforms(await ok('/v1/id', AUTH, 'HEAD'), '/v1/id', 'head');
    conforms(await get('/v1/id', {}, 'HEAD'), '/v1/id', 'head');
    conforms(await get('/v1/ids', {}, 'HEAD'), '/v1/ids', 'head');
    conforms(await get('/v1/ids?count=0', AUTH, 'HEAD'), '/v1/ids', 'head');
  }, 30_000);

  it('every error in the spec: 400, 401, 404, 405, 408, 429, 431, each with its body and headers', async () => {
    await ok('/v1/id');
    conforms(await get('/v1/ids?count=0'), '/v1/ids');
    // What node:http cannot read is answered before any route is known: the same answer
    // stands for both routes.
    const malformed = await raw('GET /v1/id HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n');
    const tooLarge = await raw(`GET /v1/id HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(16 * 1024)}\r\n\r\n`);
    const tooSlow = await raw('GET /v1/ids HTTP/1.1\r\nHost: x\r\n', 1500);
    expect([malformed.status, tooLarge.status, tooSlow.status]).toEqual([400, 431, 408]);
    for (const path of ['/v1/id', '/v1/ids']) for (const answer of [malformed, tooLarge, tooSlow]) conforms(answer, path);
    conforms(await get('/v1/id', {}), '/v1/id');
    conforms(await get('/v1/ids', { authorization: 'Bearer wrong-token-0123456789' }), '/v1/ids');
    conforms(await get('/v2/ids'), undefined);
    // 405 is declared on the GET operations: there is no operation for the method itself.
    conforms(await get('/v1/id', AUTH, 'POST'), '/v1/id');
    conforms(await get('/v1/ids', AUTH, 'DELETE'), '/v1/ids');
    // The rate limit: 200 requests/s per source; a burst past it is answered 429.
    for (const path of ['/v1/id', '/v1/ids']) {
      let limited: Answer | undefined;
      for (let i = 0; i < 2000 && limited === undefined; i++) {
        const a = await get(path);
        if (a.status === 429) limited = a;
      }
      expect(limited, `${path}: a 429 within 2000 requests at 200/s`).toBeDefined();
      conforms(limited!, path);
    }
  }, 60_000);

  it('every status the spec declares was answered and checked (500 aside: no request can cause it; 429 on GET only)', () => {
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        for (const status of Object.keys(operation.responses)) {
          if (status === '500' || (method === 'head' && status === '429')) continue;
          expect(seen.has(`${method} ${path} ${status}`), `${method.toUpperCase()} ${path} ${status} was answered`).toBe(true);
        }
      }
    }
  });
});
