// docs/agent.md's configuration reference against the schema: every default it states is the
// default the agent applies, every key it calls required is refused when missing, and every key
// the schema knows is there.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isMap, isScalar, isSeq, LineCounter, parse as parseYaml, parseDocument } from 'yaml';
import { buildConfig, ConfigError, schemaKeys } from '../src/config';
import { tempDirsRemovedAfter } from './helpers';

const DOC = path.join(__dirname, '..', '..', 'docs', 'agent.md');
const tempDir = tempDirsRemovedAfter();

/** The reference block: the YAML block of the configuration reference that starts with listen:. */
function referenceBlock(): string {
  const md = fs.readFileSync(DOC, 'utf8');
  const section = md.slice(md.indexOf('## Configuration reference'));
  const m = /```yaml\n(listen:[\s\S]*?)```/.exec(section);
  assert.ok(m, 'docs/agent.md: the configuration reference has a yaml block starting with listen:');
  return m[1] as string;
}

interface Documented {
  path: Array<string | number>;
  /** The path with list indices as [] (processes[].name), as schemaKeys() gives it. */
  key: string;
  comment: string;
  mapping: boolean;
}

function documentedKeys(block: string): Documented[] {
  const lc = new LineCounter();
  const doc = parseDocument(block, { lineCounter: lc });
  assert.deepEqual(doc.errors, [], 'the reference block is valid YAML');
  const lines = block.split('\n');
  const out: Documented[] = [];
  const walk = (node: unknown, p: Array<string | number>): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const line = lines[lc.linePos((pair.key as { range: number[] }).range[0] as number).line - 1] ?? '';
        const comment = /\s#\s?(.*)$/.exec(line)?.[1] ?? '';
        const full = [...p, k];
        out.push({
          path: full,
          key: full
            .map((x, i) => (typeof x === 'number' ? '[]' : i === 0 ? x : `.${x}`))
            .join('')
            .replace(/\.\[\]/g, '[]')
            .replace(/\[\]\./g, '[].'),
          comment,
          mapping: isMap(pair.value),
        });
        // env maps variable names to values: its keys are not configuration keys.
        if (k !== 'env') {
          walk(pair.value, full);
        }
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...p, i]));
    }
  };
  walk(doc.contents, []);
  return out;
}

function baseConfig(): Record<string, unknown> {
  const dir = tempDir();
  for (const f of ['tls.crt', 'tls.key']) {
    fs.writeFileSync(path.join(dir, f), 'not read as PEM by the configuration\n');
  }
  // The same kinds, in the same order, as the processes of the reference block.
  return {
    listen: '127.0.0.1:7070',
    stateDir: '/var/lib/vigil-agent',
    auth: { readToken: 'read-token-0123456789abcdef', controlToken: 'control-token-0123456789abcdef' },
    tls: { certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key') },
    cluster: { name: 'sql-ha', node: 'node-a', role: { static: 'active' } },
    report: { to: 'https://monitor.example.net:7443/v1/reports', token: 'report-token-0123456789' },
    processes: [
      { name: 'cdp', kind: 'command', command: ['/usr/bin/lsyncd'] },
      { name: 'lsyncd', kind: 'systemd', unit: 'lsyncd.service' },
      { name: 'store', kind: 'replicator', source: '/srv/data', target: '/mnt/cdp-store' },
    ],
  };
}

function setAt(root: Record<string, unknown>, p: Array<string | number>, value: unknown): void {
  let cur = root as Record<string | number, unknown>;
  for (const seg of p.slice(0, -1)) {
    if (cur[seg] === undefined) {
      cur[seg] = {};
    }
    cur = cur[seg] as Record<string | number, unknown>;
  }
  const last = p[p.length - 1] as string | number;
  if (value === undefined) {
    delete cur[last];
  } else {
    cur[last] = value;
  }
}

const block = referenceBlock();
const documented = documentedKeys(block);
const schema = schemaKeys();

test('every default the reference states is the one the agent applies', () => {
  const withDefault = documented.filter((d) => /^default:/.test(d.comment));
  assert.ok(withDefault.length >= 14, `defaults found: ${withDefault.map((d) => d.key).join(', ')}`);
  const base = buildConfig(baseConfig(), 'agent.yaml');
  for (const d of withDefault) {
    const m = /^default: (\S+?)\.?(\s|$)/.exec(d.comment);
    assert.ok(m, `${d.key}: "# default: VALUE"`);
    const given = baseConfig();
    setAt(given, d.path, parseYaml(m[1] as string));
    assert.deepEqual(
      { ...buildConfig(given, 'agent.yaml'), tls: undefined, auth: undefined },
      { ...base, tls: undefined, auth: undefined },
      `${d.key}: documented default ${m[1]} is not the agent's`
    );
  }
});

test('every key the reference calls required is refused when missing', () => {
  const required = documented.filter((d) => /^required\b/.test(d.comment));
  assert.ok(required.length >= 12, `required keys found: ${required.map((d) => d.key).join(', ')}`);
  for (const d of required) {
    const without = baseConfig();
    setAt(without, d.path, undefined);
    const name = d.path
      .map((x) => (typeof x === 'number' ? `[${x}]` : x))
      .join('.')
      .replace(/\.\[/g, '[');
    assert.throws(
      () => buildConfig(without, 'agent.yaml'),
      (e: ConfigError) => e.problems.some((p) => p.startsWith(`${name}: required`)),
      `${name} is documented as required`
    );
  }
});

test('the reference matches the schema: its keys exist, required and defaulted keys are marked, every key is named', () => {
  const known = new Set(schema.map((k) => k.path));
  for (const d of documented) {
    assert.ok(known.has(d.key), `docs/agent.md documents ${d.key}, which the agent does not know`);
  }
  for (const k of schema) {
    const docs = documented.filter((d) => d.key === k.path);
    const name = k.path
      .split(/[.[\]]+/)
      .filter((x) => x !== '')
      .pop() as string;
    assert.ok(new RegExp(`\\b${name}\\b`).test(block), `docs/agent.md's reference does not name ${k.path}`);
    if (k.required) {
      assert.ok(
        docs.some((d) => /^required\b/.test(d.comment)),
        `${k.path} is required: mark it "# required"`
      );
    }
    if (k.hasDefault && !docs.every((d) => d.mapping)) {
      assert.ok(
        docs.some((d) => /^default:/.test(d.comment)),
        `${k.path} has a default: mark it "# default: VALUE"`
      );
    }
  }
});
