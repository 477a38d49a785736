// HTTP routing, authentication and errors. Every error is {"error":{"code","message"}}.
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { z } from 'zod';
import type { Agent } from './agent';
import type { Access } from './auth';
import { ConflictError, OperationError, UnavailableError } from './kinds';
import { renderMetrics } from './metrics';
import { REFUSED_LOG_LIMIT, RepeatLimiter, type Clock } from './loglimit';
import { redactArgv, redactEnv } from './redact';

export const MAX_BODY_BYTES = 64 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {}
  ) {
    super(message);
  }
}

const controlBody = z.object({
  ifGeneration: z.number().int().min(0).optional(),
  reason: z.string().max(1000).optional(),
  requestedBy: z.string().max(200).optional(),
});

type Need = 'public' | 'read' | 'control';

interface Route {
  pattern: RegExp;
  methods: Partial<Record<string, { need: Need; run: (ctx: Ctx) => Promise<void> | void }>>;
}

interface Ctx {
  agent: Agent;
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: Target;
  params: string[];
}

function send(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  redact?: (text: string) => string
): void {
  const text = redact ? redact(JSON.stringify(body)) : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
      req.resume();
      reject(
        new HttpError(413, 'body_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`, { connection: 'close' })
      );
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) {
        return;
      }
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        failed = true;
        req.resume();
        reject(
          new HttpError(413, 'body_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`, {
            connection: 'close',
          })
        );
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!failed) {
        resolve(Buffer.concat(chunks));
      }
    });
    req.on('error', reject);
  });
}

async function controlRequest(req: http.IncomingMessage): Promise<z.infer<typeof controlBody>> {
  const raw = await readBody(req);
  if (raw.length === 0 || raw.toString().trim() === '') {
    return {};
  }
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, 'malformed_json', `the body is not valid JSON: ${(e as Error).message}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new HttpError(400, 'invalid_body', 'the body must be a JSON object');
  }
  const r = controlBody.safeParse(doc);
  if (!r.success) {
    const i = r.error.issues[0];
    const where = i?.path.join('.') || 'body';
    throw new HttpError(400, 'invalid_body', `${where}: ${i?.message ?? 'invalid'}`);
  }
  return r.data;
}

function supervisor(ctx: Ctx) {
  let name = ctx.params[0] ?? '';
  try {
    name = decodeURIComponent(name);
  } catch {
    // not valid percent-encoding: no process has such a name
  }
  const s = ctx.agent.supervisors.get(name);
  if (!s) {
    throw new HttpError(404, 'unknown_process', `no process named ${JSON.stringify(shownPath(name))}`);
  }
  return s;
}

let openapiCache: Buffer | undefined;
function openapi(): Buffer {
  // A literal require: tsc keeps it (dist/../openapi.json is the package's copy) and a
  // bundler inlines it, so a single-file build serves the document too.
  openapiCache ??= Buffer.from(JSON.stringify(require('../openapi.json')));
  return openapiCache;
}

const routes: Route[] = [
  {
    pattern: /^\/healthz$/,
    methods: { GET: { need: 'public', run: ({ res }) => send(res, 200, { status: 'ok' }) } },
  },
  {
    pattern: /^\/v1\/openapi\.json$/,
    methods: {
      GET: {
        need: 'public',
        run: ({ res }) => {
          const body = openapi();
          res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
          res.end(body);
        },
      },
    },
  },
  {
    pattern: /^\/v1\/status$/,
    methods: { GET: { need: 'read', run: async ({ agent, res }) => send(res, 200, await agent.status()) } },
  },
  {
    pattern: /^\/v1\/processes\/([^/]+)$/,
    methods: {
      GET: {
        need: 'read',
        run: async (ctx) => {
          const s = supervisor(ctx);
          send(ctx.res, 200, await s.status((await ctx.agent.role.current()).role));
        },
      },
    },
  },
  {
    pattern: /^\/v1\/processes\/([^/]+)\/(restart|start)$/,
    methods: {
      POST: {
        need: 'control',
        run: async (ctx) => {
          const s = supervisor(ctx);
          const body = await controlRequest(ctx.req);
          const r = await s.restart(body, ctx.params[1] === 'start' ? 'start' : 'restart');
          send(ctx.res, 202, r);
        },
      },
    },
  },
  {
    pattern: /^\/v1\/processes\/([^/]+)\/stop$/,
    methods: {
      POST: {
        need: 'control',
        run: async (ctx) => {
          const s = supervisor(ctx);
          const body = await controlRequest(ctx.req);
          send(ctx.res, 202, await s.stop(body));
        },
      },
    },
  },
  {
    pattern: /^\/v1\/events$/,
    methods: {
      GET: {
        need: 'read',
        run: ({ agent, res, url }) => {
          const since = intParam(url, 'since', 0);
          const limit = Math.min(Math.max(intParam(url, 'limit', 500), 1), 1000);
          send(res, 200, agent.events.since(since, limit));
        },
      },
    },
  },
  {
    pattern: /^\/metrics$/,
    methods: {
      GET: {
        need: 'read',
        run: async ({ agent, res }) => {
          const s = agent.status();
          const text = renderMetrics(await s, {
            latestSeq: agent.events.latestSeq(),
            count: agent.events.stats().count,
          });
          res.writeHead(200, {
            'content-type': 'text/plain; version=0.0.4; charset=utf-8',
            'content-length': Buffer.byteLength(text),
          });
          res.end(text);
        },
      },
    },
  },
  {
    pattern: /^\/debug$/,
    methods: {
      // Supervised processes' command lines and environment: the control token's holders only,
      // and even then without the values whose names look secret, nor a token.
      GET: {
        need: 'control',
        run: async ({ agent, res }) => {
          const status = await agent.status();
          const c = agent.config;
          const role = c.cluster?.role;
          send(
            res,
            200,
            {
              status,
              config: {
                file: c.file,
                listen: c.listen,
                stateDir: c.stateDir,
                tls: c.tls ? { certFile: c.tls.certFile, keyFile: c.tls.keyFile } : null,
                cluster: c.cluster
                  ? { ...c.cluster, role: role?.type === 'command' ? { ...role, argv: redactArgv(role.argv) } : role }
                  : null,
                tokens: agent.auth.counts(),
                processes: c.processes.map((p) => ({
                  ...p,
                  ...(p.command ? { command: redactArgv(p.command) } : {}),
                  ...(p.env ? { env: redactEnv(p.env) } : {}),
                })),
              },
              supervisors: Object.fromEntries(
                [...agent.supervisors].map(([name, s]) => [name, { ...s.debug(), flapGuard: s.flapGuard() }])
              ),
              events: agent.events.stats(),
              memory: process.memoryUsage(),
              uptimeSeconds: process.uptime(),
            },
            {},
            (text) => agent.log.redact(text)
          );
        },
      },
    },
  },
];

interface Target {
  pathname: string;
  searchParams: URLSearchParams;
}

// The status endpoint is polled a lot: split the target by hand instead of building a URL.
function parseTarget(raw: string): Target {
  const q = raw.indexOf('?');
  let pathname = q < 0 ? raw : raw.slice(0, q);
  try {
    pathname = decodeURI(pathname);
  } catch {
    // keep it as sent; it will not match a route
  }
  return { pathname, searchParams: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

function intParam(url: Target, name: string, dflt: number): number {
  const v = url.searchParams.get(name);
  if (v === null || v === '') {
    return dflt;
  }
  if (!/^\d{1,15}$/.test(v)) {
    throw new HttpError(400, 'invalid_parameter', `${name} must be a non-negative integer`);
  }
  return Number(v);
}

function authorize(access: Access | 'missing', need: Need): void {
  if (need === 'public') {
    return;
  }
  if (access === 'missing') {
    throw new HttpError(401, 'unauthorized', 'an Authorization: Bearer token is required', {
      'www-authenticate': 'Bearer',
    });
  }
  if (access === 'none') {
    throw new HttpError(401, 'unauthorized', 'the token is not valid', { 'www-authenticate': 'Bearer' });
  }
  if (need === 'control' && access !== 'control') {
    throw new HttpError(403, 'forbidden', 'this endpoint needs the control token');
  }
}

/** How many characters of a path a log line or an error message shows. */
export const PATH_SHOWN_CHARS = 200;

// Characters that could fool a terminal or an editor showing the log: C0 and C1 controls,
// bidirectional overrides and line separators. JSON escapes only the C0 ones.
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** A path as a log line or an error shows it: at most PATH_SHOWN_CHARS characters, unsafe characters escaped. */
export function shownPath(pathname: string): string {
  const cut =
    pathname.length > PATH_SHOWN_CHARS
      ? `${pathname.slice(0, PATH_SHOWN_CHARS)}…(${Buffer.byteLength(pathname)} bytes)`
      : pathname;
  return cut.replace(UNSAFE_CHARS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * What Node.js refuses before the handler sees a request (not HTTP, an unknown method, a
 * malformed target or header, headers over 16 KB, too slow to arrive, an unknown Expect): the same JSON errors as
 * every other answer, instead of Node.js's bare ones.
 */
export function answerClientErrors(server: http.Server): void {
  // An Expect header other than 100-continue.
  server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => {
    req.resume();
    send(
      res,
      417,
      { error: { code: 'expectation_failed', message: 'only "Expect: 100-continue" is supported' } },
      { connection: 'close' }
    );
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // An answer already under way (its own error), or nobody left to answer: just close.
    if (err.code === 'ECONNRESET' || !socket.writable || (socket as Duplex & { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
      return;
    }
    const [status, code, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'headers_too_large', 'the request headers are larger than 16 KB']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'request_timeout', 'the request did not arrive in time']
          : [400, 'bad_request', 'the request is not valid HTTP/1.1'];
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`
    );
  });
}

/** Answers to requests refused before or at authentication: their log lines are rate-limited. */
const REFUSED = new Set([401, 403, 404, 405, 413, 431]);

export interface HandlerOptions {
  /** The rate limit of refused requests' log lines; its clock too, for tests. */
  refusedLogLimit?: { limit: number; windowMs: number; clock?: Clock };
}

export function createHandler(agent: Agent, opts: HandlerOptions = {}): http.RequestListener {
  const refusedLimit = opts.refusedLogLimit ?? REFUSED_LOG_LIMIT;
  const refused = new RepeatLimiter({
    ...refusedLimit,
    onSuppressed: (count) =>
      agent.log.info(`suppressed ${count} similar requests`, {
        suppressed: count,
        windowSeconds: refusedLimit.windowMs / 1000,
      }),
  });
  return (req, res) => {
    const started = Date.now();
    const url = parseTarget(req.url ?? '/');
    const run = async () => {
      let params: string[] = [];
      const route = routes.find((r) => {
        const m = r.pattern.exec(url.pathname);
        if (m) {
          params = m.slice(1);
        }
        return m !== null;
      });
      if (!route) {
        throw new HttpError(404, 'not_found', `no such path ${shownPath(url.pathname)}`);
      }
      const method = route.methods[req.method ?? 'GET'];
      if (!method) {
        const allow = Object.keys(route.methods).join(', ');
        throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed here; use ${allow}`, { allow });
      }
      authorize(agent.auth.check(req.headers.authorization), method.need);
      await method.run({ agent, req, res, url, params });
    };
    // An error message may quote the request (a path, a name): a token in it is not sent back.
    const redact = (text: string) => agent.log.redact(text);
    run()
      .catch((e: unknown) => {
        if (e instanceof HttpError) {
          send(res, e.status, { error: { code: e.code, message: e.message } }, e.headers, redact);
        } else if (e instanceof ConflictError) {
          send(res, 409, { error: { code: 'stale_generation', message: e.message, generation: e.current } });
        } else if (e instanceof UnavailableError) {
          send(res, 503, { error: { code: 'unavailable', message: e.message } });
        } else if (e instanceof OperationError) {
          send(res, 500, { error: { code: 'operation_failed', message: e.message } }, {}, redact);
        } else {
          agent.log.error('request failed', { method: req.method, path: shownPath(url.pathname), error: e });
          send(res, 500, { error: { code: 'internal', message: 'internal error; see the agent log' } });
        }
      })
      .finally(() => {
        // What one request adds to the log is bounded: the method (Node.js accepts only known
        // ones), the path cut and escaped, no query string, no header.
        const fields = {
          method: req.method,
          path: shownPath(url.pathname),
          status: res.statusCode,
          ms: Date.now() - started,
        };
        if (res.statusCode < 400 && req.method === 'GET') {
          agent.log.debug('request', fields);
        } else if (res.statusCode >= 500) {
          agent.log.error('request', fields);
        } else if (!REFUSED.has(res.statusCode) || refused.admit()) {
          agent.log.info('request', fields);
        }
      });
  };
}
