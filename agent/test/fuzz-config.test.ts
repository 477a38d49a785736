// Fuzzing configuration loading: random YAML texts and documents, and mutations of the fixtures.
// Whatever comes, the answer is a Config or a ConfigError naming the file and each problem,
// never another exception.
// The inputs in fuzz-corpus/config/ (seeds, and every failure found) are replayed at every run;
// then fast-check generates FUZZ_RUNS more of each kind (default 300) from a fixed seed (FUZZ_SEED).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { parse as parseYaml, stringify } from 'yaml';
import { buildConfig, ConfigError, parseConfig } from '../src/config';

const CORPUS = path.join(__dirname, 'fuzz-corpus', 'config');
const FIXTURES = path.join(__dirname, 'fixtures', 'config');
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? 14);
const FILE = '/etc/vigil-agent/fuzz.yaml';

/** The property: a Config, or a ConfigError that names the file and lists its problems. */
function loadsOrExplains(load: () => unknown): void {
  try {
    const c = load() as { file?: unknown };
    assert.equal(c.file, FILE);
  } catch (e) {
    if (!(e instanceof ConfigError)) {
      throw new Error(`not a ConfigError: ${(e as Error)?.stack ?? String(e)}`);
    }
    assert.equal(e.file, FILE);
    assert.ok(e.problems.length > 0, 'a ConfigError lists its problems');
    for (const p of e.problems) {
      assert.ok(typeof p === 'string' && p.length > 0 && p.length < 2000, `a problem is a short text: ${p}`);
    }
    assert.ok(e.message.startsWith(`${FILE}: `), e.message);
  }
}

test('the corpus replays: seeds and every failure found so far', () => {
  const files = fs
    .readdirSync(CORPUS)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  assert.ok(files.length >= 5, 'the corpus has its seeds');
  for (const f of files) {
    const text = fs.readFileSync(path.join(CORPUS, f), 'utf8');
    try {
      loadsOrExplains(() => parseConfig(text, FILE));
    } catch (e) {
      throw new Error(`fuzz-corpus/config/${f}: ${(e as Error).message}`);
    }
  }
});

const fixtureTexts = fs
  .readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => fs.readFileSync(path.join(FIXTURES, f), 'utf8'));
const VALID = `listen: "127.0.0.1:7070"
stateDir: /tmp/vigil-agent-fuzz
auth: { readToken: "read-token-0123456789abcdef", controlToken: "control-token-0123456789abcdef" }
cluster: { name: c, node: n, role: { command: ["/bin/echo", "active"], timeout: 2s } }
events: { keep: 100, keepFailures: 10 }
processes:
  - { name: cdp, kind: command, command: ["/bin/true"], env: { A: b }, stopTimeout: 5s, runOn: always }
  - { name: unit, kind: systemd, unit: x.service }
  - { name: rep, kind: replicator, source: /srv/data, target: /srv/store, retention: 7d, hash: auto }
`;
const texts = [VALID, ...fixtureTexts];
const docs = texts.map((t) => {
  try {
    return parseYaml(t) as unknown;
  } catch {
    return null;
  }
});

test('the valid seed loads', () => {
  assert.equal(parseConfig(VALID, FILE).processes.length, 3);
});

/** Every path (list of keys) in a document. */
function paths(doc: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [prefix];
  if (Array.isArray(doc)) {
    doc.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  } else if (doc !== null && typeof doc === 'object') {
    for (const [k, v] of Object.entries(doc)) {
      out.push(...paths(v, [...prefix, k]));
    }
  }
  return out;
}

function mutate(doc: unknown, at: Array<string | number>, op: 'set' | 'delete' | 'wrap', value: unknown): unknown {
  if (at.length === 0) {
    return op === 'delete' ? undefined : op === 'wrap' ? [doc] : value;
  }
  const copy: unknown = structuredClone(doc);
  let parent = copy as Record<string | number, unknown>;
  for (const k of at.slice(0, -1)) {
    parent = parent[k] as Record<string | number, unknown>;
  }
  const last = at[at.length - 1] as string | number;
  if (op === 'delete') {
    if (Array.isArray(parent)) {
      parent.splice(Number(last), 1);
    } else {
      delete parent[last];
    }
  } else {
    parent[last] = op === 'wrap' ? [parent[last]] : value;
  }
  return copy;
}

const odd = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    '',
    ' ',
    '0',
    '-1',
    '1e309',
    'NaN',
    '10x',
    '99999999999999999999d',
    '-5s',
    '::',
    '[::1]:99999',
    '127.0.0.1:',
    '/',
    '.',
    '..',
    'SIGKILL',
    'always',
    'active',
    null,
    true,
    -1,
    1e308,
    2 ** 53,
    -0
  ),
  fc.string({ unit: 'grapheme', maxLength: 30 })
);

test(`mutated fixtures (${RUNS} runs, seed ${SEED}): a Config or a ConfigError`, () => {
  const mutation = fc
    .nat({ max: docs.length - 1 })
    .chain((i) =>
      fc.tuple(
        fc.constant(docs[i]),
        fc.constantFrom(...paths(docs[i])),
        fc.constantFrom('set', 'delete', 'wrap') as fc.Arbitrary<'set' | 'delete' | 'wrap'>,
        odd
      )
    );
  fc.assert(
    fc.property(mutation, ([doc, at, op, value]) => {
      const mutated = mutate(doc, at, op, value);
      loadsOrExplains(() => buildConfig(mutated, FILE));
      // And as a file: the same document written as YAML.
      loadsOrExplains(() => parseConfig(stringify(mutated) ?? '', FILE));
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true }
  );
});

test(`random YAML texts and edits of the fixtures (${RUNS} runs, seed ${SEED}): a Config or a ConfigError`, () => {
  const edit = fc
    .tuple(
      fc.nat({ max: texts.length - 1 }),
      fc.nat(),
      fc.nat({ max: 20 }),
      fc.string({ unit: 'grapheme', maxLength: 20 })
    )
    .map(([i, pos, del, ins]) => {
      const t = texts[i] as string;
      const p = pos % (t.length + 1);
      return t.slice(0, p) + ins + t.slice(p + del);
    });
  const yamlish = fc
    .array(
      fc.constantFrom(
        'a',
        ':',
        ' ',
        '\n',
        '- ',
        '{',
        '}',
        '[',
        ']',
        '"',
        "'",
        '&x ',
        '*x',
        '!!str ',
        '!!binary ',
        '? ',
        '|',
        '>',
        '#',
        '%YAML 1.1\n',
        '---\n',
        '<<: *x',
        'processes',
        'auth',
        'listen',
        '0x1F',
        '~',
        '\t'
      ),
      { maxLength: 60 }
    )
    .map((a) => a.join(''));
  fc.assert(
    fc.property(
      fc.oneof(
        edit,
        yamlish,
        fc.string({ maxLength: 200 }),
        fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? '')
      ),
      (text) => {
        loadsOrExplains(() => parseConfig(text, FILE));
      }
    ),
    { numRuns: RUNS, seed: SEED, endOnFailure: true }
  );
});

test(`random documents (${RUNS} runs, seed ${SEED}): a Config or a ConfigError`, () => {
  const anything = fc.anything({
    maxDepth: 3,
    withNullPrototype: true,
    withMap: true,
    withSet: true,
    withBigInt: true,
    withDate: true,
    withTypedArray: true,
    withSparseArray: true,
    withBoxedValues: true,
  });
  const shaped = fc.record(
    {
      listen: odd,
      stateDir: odd,
      logLevel: odd,
      strictPermissions: odd,
      auth: fc.oneof(
        odd,
        fc.dictionary(
          fc.constantFrom(
            'readToken',
            'readTokenFile',
            'readTokens',
            'controlToken',
            'controlTokenFile',
            'controlTokens'
          ),
          odd
        )
      ),
      processes: fc.oneof(
        odd,
        fc.array(
          fc.dictionary(
            fc.constantFrom(
              'name',
              'kind',
              'command',
              'unit',
              'env',
              'source',
              'target',
              'retention',
              'stopTimeout',
              'runOn'
            ),
            odd
          ),
          { maxLength: 3 }
        )
      ),
    },
    { requiredKeys: [] }
  );
  fc.assert(
    fc.property(fc.oneof(anything, shaped), (doc) => {
      loadsOrExplains(() => buildConfig(doc, FILE));
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true }
  );
});
