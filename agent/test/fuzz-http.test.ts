// Fuzzing the agent's HTTP request handling: raw requests (any method, path, query, header,
// body) sent over a socket to the real handler on loopback. Whatever comes, the answer is never
// a 5xx, an error is always a JSON body with a code the OpenAPI document lists, no answer and no
// log line holds a token, and nothing is left unhandled.
// The inputs in fuzz-corpus/http/ (seeds, and every failure found) are replayed at every run;
// then fast-check generates FUZZ_RUNS more (default 250) from a fixed seed (FUZZ_SEED).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { CONTROL_TOKEN, READ_TOKEN } from './helpers';
import { startInProcess, type InProcessAgent } from './inprocess';

const CORPUS = path.join(__dirname, 'fuzz-corpus', 'http');
const RUNS = Number(process.env.FUZZ_RUNS ?? 250);
const SEED = Number(process.env.FUZZ_SEED ?? 14);

const openapi = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'openapi.json'), 'utf8'));
const ERROR_CODES: string[] = openapi.components.schemas.Error.properties.error.properties.code.enum;

/** One request, as stored in the corpus: the body is text, or `bodyRepeat` times `body`. */
export interface HttpInput {
  method: string;
  target: string;
  headers: Array<[string, string]>;
  body: string;
  bodyRepeat?: number;
}

function bodyOf(i: HttpInput): Buffer {
  return Buffer.from(i.body.repeat(i.bodyRepeat ?? 1), 'utf8');
}

/** Sends the request as raw bytes and reads the whole answer (the connection is closed after it). */
function send(port: number, i: HttpInput): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const body = bodyOf(i);
    const head =
      `${i.method} ${i.target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n` +
      i.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('') +
      (body.length > 0 || i.method === 'POST' ? `Content-Length: ${body.length}\r\n` : '') +
      '\r\n';
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => {
      socket.destroy();
      reject(new Error('no answer within 10 s'));
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    // The server may answer (413) and close before it has read the whole body.
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ECONNRESET' && e.code !== 'EPIPE') {
        reject(e);
      }
    });
    socket.on('close', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const end = raw.indexOf('\r\n\r\n');
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(raw);
      if (!m || end < 0) {
        reject(new Error(`not an HTTP answer: ${JSON.stringify(raw.slice(0, 200))}`));
        return;
      }
      resolve({ status: Number(m[1]), headers: raw.slice(0, end), body: raw.slice(end + 4) });
    });
    socket.write(Buffer.concat([Buffer.from(head, 'utf8'), body]));
  });
}

let a: InProcessAgent;
const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);
before(async () => {
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUnhandled);
  a = await startInProcess({ level: 'debug' });
});
after(async () => {
  await a.close();
  process.off('unhandledRejection', onUnhandled);
  process.off('uncaughtException', onUnhandled);
});

async function check(i: HttpInput): Promise<void> {
  const r = await send(a.port, i);
  const what = `${i.method} ${i.target.slice(0, 100)}`;
  assert.ok(r.status >= 200 && r.status < 500, `${what}: status ${r.status}: ${r.body.slice(0, 300)}`);
  for (const t of [READ_TOKEN, CONTROL_TOKEN]) {
    assert.ok(!r.body.includes(t) && !r.headers.includes(t), `${what}: the answer holds a token`);
  }
  if (r.status >= 400 && i.method !== 'HEAD') {
    assert.match(r.headers, /^content-type: application\/json; charset=utf-8$/im, `${what}: ${r.status} not JSON`);
    let doc: { error?: { code?: unknown; message?: unknown } };
    try {
      doc = JSON.parse(r.body);
    } catch {
      assert.fail(`${what}: ${r.status} with a body that is not JSON: ${r.body.slice(0, 200)}`);
    }
    assert.ok(ERROR_CODES.includes(String(doc.error?.code)), `${what}: unknown error code ${String(doc.error?.code)}`);
    assert.equal(typeof doc.error?.message, 'string', what);
  }
  assert.deepEqual(unhandled, [], `${what}: unhandled errors`);
}

test('the corpus replays: seeds and every failure found so far', async () => {
  const files = fs
    .readdirSync(CORPUS)
    .filter((f) => f.endsWith('.json'))
    .sort();
  assert.ok(files.length >= 10, 'the corpus has its seeds');
  for (const f of files) {
    const input = JSON.parse(fs.readFileSync(path.join(CORPUS, f), 'utf8')) as HttpInput;
    await check(input).catch((e: Error) => {
      throw new Error(`fuzz-corpus/http/${f}: ${e.message}`);
    });
  }
});

const token = fc.constantFrom(READ_TOKEN, CONTROL_TOKEN, 'wrong-token-0123456789', '', READ_TOKEN.toUpperCase());
const authorization = fc.oneof(
  token.map((t) => `Bearer ${t}`),
  token.map((t) => `bearer\t${t}  `),
  token.map((t) => `Basic ${Buffer.from(`u:${t}`).toString('base64')}`),
  fc.tuple(token, token).map(([x, y]) => `Bearer ${x} ${y}`),
  fc.string({ unit: 'grapheme-ascii', maxLength: 300 }).map((s) => s.replace(/[\r\n]/g, ''))
);
const segment = fc.oneof(
  fc.constantFrom(
    'v1',
    'status',
    'processes',
    'cdp',
    'restart',
    'start',
    'stop',
    'events',
    'metrics',
    'debug',
    'healthz',
    'openapi.json',
    '..',
    '.',
    '',
    '%2e%2e',
    '%2F',
    '%00',
    '%zz',
    '%',
    '%e2%80%ae',
    '%ff',
    '~'
  ),
  token,
  fc.string({ unit: 'grapheme-ascii', maxLength: 20 }).map((s) => s.replace(/[\s?#]/g, '_')),
  fc.string({ unit: 'grapheme', maxLength: 8 }).map((s) => encodeURIComponent(s)),
  fc.string({ unit: 'grapheme', maxLength: 8 }).map((s) => s.replace(/[\s?#]/g, '_')),
  fc.integer({ min: 100, max: 9000 }).map((n) => 'a'.repeat(n))
);
const query = fc.oneof(
  fc.constant(''),
  fc.constantFrom(
    '?since=0',
    '?since=-1',
    '?limit=0',
    '?limit=99999999999999999999',
    '?since=1e3',
    '?since=&limit=',
    '?since=1&since=2',
    '?%zz',
    '?&&=='
  ),
  fc.string({ unit: 'grapheme-ascii', maxLength: 60 }).map((s) => `?${s.replace(/[\s#]/g, '_')}`)
);
const body = fc.oneof(
  fc.constant(''),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? ''),
  fc
    .record(
      {
        ifGeneration: fc.oneof(fc.integer(), fc.double(), fc.string()),
        reason: fc.string({ maxLength: 1200 }),
        requestedBy: fc.string({ maxLength: 300 }),
      },
      { requiredKeys: [] }
    )
    .map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom('{', 'null', '[]', '"x"', '{"ifGeneration":1e400}', '{"__proto__":{"x":1}}')
);
const input: fc.Arbitrary<HttpInput> = fc.record({
  method: fc.constantFrom(
    'GET',
    'GET',
    'GET',
    'POST',
    'POST',
    'HEAD',
    'PUT',
    'DELETE',
    'OPTIONS',
    'PATCH',
    'TRACE',
    'BREW',
    'get',
    'G@T'
  ),
  target: fc.tuple(fc.array(segment, { minLength: 1, maxLength: 5 }), query).map(([s, q]) => `/${s.join('/')}${q}`),
  headers: fc.array(
    fc.oneof(
      authorization.map((v) => ['Authorization', v] as [string, string]),
      fc.tuple(
        fc.constantFrom('Content-Type', 'Accept', 'X-Forwarded-For', 'Origin', 'Expect', 'X-Y'),
        fc.string({ unit: 'grapheme-ascii', maxLength: 100 }).map((s) => s.replace(/[\r\n]/g, ''))
      ),
      fc.integer({ min: 1, max: 20_000 }).map((n) => ['X-Big', 'b'.repeat(n)] as [string, string])
    ),
    { maxLength: 3 }
  ),
  body,
  bodyRepeat: fc.oneof(fc.constant(1), fc.constant(1), fc.integer({ min: 1, max: 3000 })),
});

test(`random requests (${RUNS} runs, seed ${SEED}): never a 5xx, a crash or a token; errors are JSON with a known code`, async () => {
  await fc.assert(fc.asyncProperty(input, check), { numRuns: RUNS, seed: SEED, endOnFailure: true });
  for (const t of [READ_TOKEN, CONTROL_TOKEN]) {
    assert.ok(!a.text().includes(t), 'the log holds a token');
  }
});
