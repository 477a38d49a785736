// The redaction rule for supervised processes' environment and command lines, and the logger's
// redaction of tokens.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../src/log';
import { describeArgv, isSecretName, REDACTED, redactArgv, redactEnv } from '../src/redact';

test('names that look secret, in any case', () => {
  for (const n of [
    'PASSWORD',
    'db_password',
    'PGPASSWD',
    'ApiToken',
    'CLIENT_SECRET',
    'aws_access_key_id',
    'KEY',
    '--journal-key',
    'keyfile',
  ]) {
    assert.ok(isSecretName(n), n);
  }
  for (const n of ['PATH', 'HOME', 'USER', 'DB_HOST', '--source', 'PASS', '--user']) {
    assert.ok(!isSecretName(n), n);
  }
});

test('environment: names stay, secret values go', () => {
  assert.deepEqual(
    redactEnv({
      PATH: '/usr/bin',
      DB_PASSWORD: 'hunter2',
      api_token: 't0k3n',
      Secret_Thing: 's',
      SSH_KEY: 'k',
      EMPTY_KEY: '',
    }),
    {
      PATH: '/usr/bin',
      DB_PASSWORD: REDACTED,
      api_token: REDACTED,
      Secret_Thing: REDACTED,
      SSH_KEY: REDACTED,
      EMPTY_KEY: REDACTED,
    }
  );
});

const cases: Array<{ name: string; argv: string[]; want: string[] }> = [
  {
    name: 'nothing secret',
    argv: ['/usr/bin/cdp', '--source', '/data', '-v', 'x'],
    want: ['/usr/bin/cdp', '--source', '/data', '-v', 'x'],
  },
  { name: '--password=x', argv: ['cdp', '--password=hunter2'], want: ['cdp', `--password=${REDACTED}`] },
  { name: '--PASSWORD=x (any case)', argv: ['cdp', '--DB-Password=a=b'], want: ['cdp', `--DB-Password=${REDACTED}`] },
  {
    name: '--password x',
    argv: ['cdp', '--password', 'hunter2', '--user', 'bob'],
    want: ['cdp', '--password', REDACTED, '--user', 'bob'],
  },
  { name: '-token x', argv: ['cdp', '-token', 'abc'], want: ['cdp', '-token', REDACTED] },
  {
    name: '--api-key x then more',
    argv: ['cdp', '--api-key', 'k', 'positional'],
    want: ['cdp', '--api-key', REDACTED, 'positional'],
  },
  {
    name: 'secret option followed by an option: taken too',
    argv: ['cdp', '--secret', '--verbose'],
    want: ['cdp', '--secret', REDACTED],
  },
  { name: 'secret option last', argv: ['cdp', '--passwd'], want: ['cdp', '--passwd'] },
  {
    name: 'env assignment',
    argv: ['env', 'PGPASSWORD=hunter2', 'HOME=/root', 'pg_receivewal'],
    want: ['env', `PGPASSWORD=${REDACTED}`, 'HOME=/root', 'pg_receivewal'],
  },
  {
    name: 'URL password',
    argv: ['cdp', 'postgres://bob:hunter2@db:5432/x'],
    want: ['cdp', `postgres://bob:${REDACTED}@db:5432/x`],
  },
  {
    name: 'URL without password',
    argv: ['cdp', 'https://example.org/a:b@c'],
    want: ['cdp', 'https://example.org/a:b@c'],
  },
  {
    name: 'option value that is not an option',
    argv: ['cdp', '--key-file=/etc/k'],
    want: ['cdp', `--key-file=${REDACTED}`],
  },
  { name: 'a secret word in a plain argument stays', argv: ['cdp', 'password'], want: ['cdp', 'password'] },
];

for (const c of cases) {
  test(`command line: ${c.name}`, () => {
    assert.deepEqual(redactArgv(c.argv), c.want);
  });
}

test('describeArgv quotes the redacted command line', () => {
  assert.equal(describeArgv(['a', '--token=x']), `["a","--token=${REDACTED}"]`);
  assert.equal(describeArgv(undefined), '[]');
});

test('the logger redacts a registered token, also in its JSON-escaped form', () => {
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l) });
  const token = 'tok"en\\0123456789abcdef';
  log.addSecrets([token]);
  log.info('x', { header: `Bearer ${token}` });
  assert.equal(lines.length, 1);
  assert.ok(!lines[0]?.includes(JSON.stringify(token).slice(1, -1)), lines[0]);
  assert.match(lines[0] as string, /Bearer \[REDACTED\]/);
  assert.equal(log.redact(`a ${token} b`), 'a [REDACTED] b');
});
