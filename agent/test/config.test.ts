import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { buildConfig, ConfigError, loadConfig, parseConfig, parseDuration, suggest, withLine } from '../src/config';
import { spawnSync } from 'node:child_process';
import { createLogger } from '../src/log';
import {
  commandLineErrorText,
  configErrorText,
  HELP,
  reportCommandLineError,
  reportConfigError,
  USAGE,
} from '../src/usage';
import { AGENT_DIR, CLI, runCliToEnd, tempDirsRemovedAfter } from './helpers';

const tempDir = tempDirsRemovedAfter();

const FIXTURES = path.join(__dirname, 'fixtures', 'config');

function expectation(file: string): string {
  const first = fs.readFileSync(file, 'utf8').split('\n')[0] ?? '';
  const m = /^# expect: (.*)$/.exec(first);
  assert.ok(m, `${file} must start with "# expect: MESSAGE"`);
  return m[1] as string;
}

function errorLine(stderr: string): Record<string, unknown> {
  const lines = stderr.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
}

describe('invalid configuration: one fixture per case with its exact message', () => {
  const files = fs
    .readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  test('there are fixtures', () => assert.ok(files.length >= 20));
  for (const f of files) {
    test(f, () => {
      const file = path.join(FIXTURES, f);
      const expected = expectation(file);
      assert.throws(
        () => loadConfig(file),
        (e: Error) => {
          assert.equal(e.message, `${file}: ${expected}`);
          return true;
        }
      );
    });
  }
  // Starting the CLI costs a fresh Node.js each time: check the exit path on a sample.
  for (const f of ['unknown-key.yaml', 'missing-command.yaml', 'invalid-yaml.yaml']) {
    test(`the CLI exits 2 with the message: ${f}`, async () => {
      const file = path.join(FIXTURES, f);
      const { code, stderr } = await runCliToEnd(['run', '--config', file]);
      assert.equal(code, 2, stderr);
      const line = errorLine(stderr);
      assert.equal(line.level, 'error');
      assert.equal(line.msg, 'invalid configuration');
      assert.equal(line.error, `${file}: ${expectation(file)}`);
      assert.deepEqual(line.problems, [expectation(file)]);
      assert.equal(line.help, 'vigil-agent --help');
      assert.equal(stderr.trim().split('\n').length, 1, 'one JSON line');
    });
  }
});

test('a missing configuration file exits 2 and names the file', async () => {
  const file = path.join(tempDir(), 'absent.yaml');
  const { code, stderr } = await runCliToEnd(['--config', file]);
  assert.equal(code, 2);
  assert.equal(errorLine(stderr).error, `${file}: cannot read configuration: file not found`);
});

test('an unreadable configuration file exits 2', async () => {
  const dir = tempDir();
  // A directory cannot be read as a file, whoever runs the test (root ignores file modes).
  const { code, stderr } = await runCliToEnd(['--config', dir]);
  assert.equal(code, 2);
  assert.equal(errorLine(stderr).error, `${dir}: cannot read configuration: is a directory`);
});

test('the command line is checked: no --config exits 2, in one JSON line that points at --help', async () => {
  const { code, stderr } = await runCliToEnd(['run']);
  assert.equal(code, 2);
  assert.equal(stderr.trim().split('\n').length, 1, stderr);
  const line = errorLine(stderr);
  assert.deepEqual(
    [line.level, line.msg, line.error, line.help, line.usage],
    ['error', 'invalid command line', '--config FILE is required', 'vigil-agent --help', undefined]
  );
  const help = await runCliToEnd(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: vigil-agent \[run\] --config FILE/);
});

test('defaults are applied and durations may be 0', () => {
  const c = buildConfig(
    {
      listen: '127.0.0.1:7070',
      stateDir: '/tmp/x',
      auth: { readTokens: ['r1-0123456789abcdef', 'r2-0123456789abcdef'], controlToken: 'c-0123456789abcdef' },
      cluster: { name: 'sql-ha', node: 'node-a', role: { file: '/etc/vigil/role' } },
      processes: [
        { name: 'cdp', kind: 'command', command: ['/usr/bin/lsyncd', '-nodaemon'] },
        { name: 'unit', kind: 'systemd', unit: 'lsyncd.service', stopTimeout: 0, runOn: 'always' },
      ],
    },
    'test.yaml'
  );
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 7070 });
  assert.deepEqual(c.auth.readTokens, ['r1-0123456789abcdef', 'r2-0123456789abcdef']);
  assert.deepEqual(c.cluster?.role, { type: 'file', path: '/etc/vigil/role' });
  assert.equal(c.cluster?.roleCacheMs, 1000);
  const [cdp, unit] = c.processes;
  assert.deepEqual(
    {
      startOnBoot: cdp?.startOnBoot,
      runOn: cdp?.runOn,
      stopSignal: cdp?.stopSignal,
      stopTimeoutMs: cdp?.stopTimeoutMs,
      autoRestart: cdp?.autoRestart,
    },
    { startOnBoot: true, runOn: 'active', stopSignal: 'SIGTERM', stopTimeoutMs: 10_000, autoRestart: false }
  );
  assert.equal(unit?.stopTimeoutMs, 0);
  assert.deepEqual(c.warnings, []);
  assert.deepEqual(c.events, { keep: 1000, keepFailures: 200 });
});

test('a short token is accepted with a warning that does not contain it', () => {
  const c = buildConfig(
    {
      listen: '[::1]:0',
      stateDir: '/tmp/x',
      auth: { readToken: 'short', controlToken: 'c-0123456789abcdef' },
      processes: [{ name: 'a', kind: 'command', command: ['x'] }],
    },
    't.yaml'
  );
  assert.deepEqual(c.listen, { host: '::1', port: 0 });
  assert.equal(c.warnings.length, 1);
  assert.match(c.warnings[0] as string, /^auth\.readToken: a token shorter than 16 characters/);
  assert.ok(!(c.warnings[0] as string).includes('short,'));
});

test('token files are read and trimmed', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'read'), 'from-a-file-0123456789\n');
  const c = buildConfig(
    {
      listen: ':7070',
      stateDir: dir,
      auth: { readTokenFile: path.join(dir, 'read'), controlTokens: ['c-0123456789abcdef'] },
      processes: [{ name: 'a', kind: 'command', command: ['x'] }],
    },
    't.yaml'
  );
  assert.deepEqual(c.auth.readTokens, ['from-a-file-0123456789']);
  assert.deepEqual(c.listen, { host: '0.0.0.0', port: 7070 });
});

// The grammar's cases, shared with the monitor's (pkg/fleet) and the frontend's tests.
const durationTable: { durations: Array<{ text: string; seconds: number }>; invalid: string[] } = JSON.parse(
  fs.readFileSync(path.join(__dirname, '../../pkg/fleet/testdata/durations.json'), 'utf8')
);

test('durations', () => {
  for (const { text, seconds } of durationTable.durations) {
    const want = seconds < 0 ? undefined : Math.round(seconds * 1000);
    assert.equal(parseDuration(text), want, text);
    if (!Number.isNaN(Number(text.trim()))) {
      assert.equal(parseDuration(Number(text)), want, `the number ${text}`);
    }
  }
  for (const text of durationTable.invalid) {
    assert.equal(parseDuration(text), undefined, text);
  }
  assert.equal(parseDuration(-1), undefined);
  assert.equal(parseDuration(Infinity), undefined);
});

test('a replicator process: defaults, resolved paths and retention', () => {
  const c = buildConfig(
    {
      listen: '127.0.0.1:0',
      stateDir: '/tmp/x',
      auth: { readToken: 'read-token-0123456789abcdef', controlToken: 'control-token-0123456789abcdef' },
      processes: [
        { name: 'cdp', kind: 'replicator', source: '/srv/data/', target: '/mnt/cdp-store' },
        {
          name: 'cdp2',
          kind: 'replicator',
          source: '/srv/b',
          target: '/mnt/b',
          retention: '2h',
          hash: 'sha256',
          startOnBoot: false,
          runOn: 'always',
        },
      ],
    },
    'inline.yaml'
  );
  const [a, b] = c.processes;
  assert.equal(a?.kind, 'replicator');
  assert.equal(a?.source, '/srv/data');
  assert.equal(a?.target, '/mnt/cdp-store');
  assert.equal(a?.retentionMs, 7 * 86_400_000);
  assert.equal(a?.hash, 'auto');
  assert.equal(b?.hash, 'sha256');
  assert.equal(a?.startOnBoot, true);
  assert.equal(a?.runOn, 'active');
  assert.equal(b?.retentionMs, 2 * 3_600_000);
  assert.equal(b?.startOnBoot, false);
  assert.equal(b?.runOn, 'always');
});

function problemsOf(text: string): string[] {
  try {
    parseConfig(text, 'agent.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  assert.fail('the configuration was accepted');
}

test('a typo is named first, with its line, a suggestion and the known keys; what it leaves missing comes after', () => {
  const problems = problemsOf(
    [
      'listen: "127.0.0.1:7070"',
      'auth: { readToken: "read-token-0123456789", controlToken: "control-token-0123456789" }',
      'processes:',
      '  - name: cdp',
      '    kind: command',
      '    comand: ["/bin/true"]',
      'stateDri: /var/lib/vigil-agent',
      'logLevel: verbose',
    ].join('\n')
  );
  assert.deepEqual(problems, [
    'processes[0].comand: unknown key (line 6); did you mean command? known keys: name, kind, command, unit, cwd, env, source, target, retention, hash, journalKey, verifyEvery, startOnBoot, runOn, stopSignal, stopTimeout, autoRestart',
    'stateDri: unknown key (line 7); did you mean stateDir? known keys: listen, stateDir, logLevel, strictPermissions, auth, tls, cluster, events, processes, report',
    'stateDir: required',
    'logLevel: must be one of debug, info, warn, error (line 8)',
  ]);
});

test('suggestions: only one close known key, never a far one', () => {
  const top = ['listen', 'stateDir', 'logLevel', 'strictPermissions', 'auth', 'tls', 'cluster', 'events', 'processes'];
  assert.equal(suggest('stateDri', top), 'stateDir');
  assert.equal(suggest('statedir', top), 'stateDir');
  assert.equal(suggest('proceses', top), 'processes');
  assert.equal(suggest('pollInterval', top), undefined);
  assert.equal(suggest('tsl', top), 'tls');
  assert.equal(suggest('x', top), undefined);
  // Two equally close keys: no guess.
  assert.equal(suggest('readTokenz', ['readTokens', 'readTokenFile', 'readToken']), undefined);
  assert.equal(suggest('readTokn', ['readTokens', 'readTokenFile', 'readToken']), 'readToken');
});

test('(line N) follows the first clause of a message, never inside a quoted value', () => {
  assert.equal(withLine('required', 3), 'required (line 3)');
  assert.equal(withLine('required (give one of a or b)', 3), 'required (line 3; give one of a or b)');
  assert.equal(withLine('unknown key; known keys: a, b', 3), 'unknown key (line 3); known keys: a, b');
  assert.equal(
    withLine('invalid duration "a (b); c" (use e.g. 10s)', 3),
    'invalid duration "a (b); c" (line 3; use e.g. 10s)'
  );
  assert.equal(
    withLine('file /x line 2: a token cannot contain white space (one token per line)', 3),
    'file /x line 2: a token cannot contain white space (one token per line)'
  );
  assert.equal(withLine('required', undefined), 'required');
});

test('a document built in code (no text) gets messages without lines', () => {
  assert.throws(
    () =>
      buildConfig(
        {
          listen: '127.0.0.1:0',
          stateDir: '/tmp/x',
          auth: { readToken: 'r-0123456789abcdef', controlToken: 'c-0123456789abcdef' },
          processes: [{ name: 'a', kind: 'command' }],
          extra: 1,
        },
        't.yaml'
      ),
    (e: ConfigError) => {
      assert.deepEqual(e.problems, [
        'extra: unknown key; known keys: listen, stateDir, logLevel, strictPermissions, auth, tls, cluster, events, processes, report',
      ]);
      return true;
    }
  );
});

test('every key given twice is named with both lines; no line of the file is quoted', () => {
  const secret = 'control-token-never-shown-0123456789';
  const problems = problemsOf(
    [
      'listen: "127.0.0.1:7070"',
      'auth:',
      `  controlToken: ${secret}`,
      `  controlToken: ${secret}`,
      'listen: ":7071"',
    ].join('\n')
  );
  assert.deepEqual(problems, [
    'auth.controlToken: is given twice (line 4; first at line 3)',
    'listen: is given twice (line 5; first at line 1)',
  ]);
  const syntax = problemsOf(`auth:\n  controlToken: "${secret}\nlisten: x\n`);
  assert.deepEqual(syntax, ['invalid YAML at line 2, column 17: the " opened here is not closed on this line']);
});

describe('on a terminal: text for a person, not JSON', () => {
  const problems = [
    'stateDri: unknown key (line 3); did you mean stateDir? known keys: listen, stateDir',
    'stateDir: required',
  ];
  const error = new ConfigError('/etc/vigil-agent/agent.yaml', problems);

  test('a configuration error: the file, then one problem per line', () => {
    assert.equal(
      configErrorText(error),
      'vigil-agent: invalid configuration /etc/vigil-agent/agent.yaml (2 problems):\n' +
        '  stateDri: unknown key (line 3); did you mean stateDir? known keys: listen, stateDir\n' +
        '  stateDir: required\n'
    );
    assert.match(
      configErrorText(new ConfigError('a.yaml', ['listen: required'])),
      /^vigil-agent: invalid configuration a\.yaml \(1 problem\):\n  listen: required\n$/
    );
  });

  test('a command-line error: the error, then the usage as lines', () => {
    const text = commandLineErrorText('unknown argument "--confg"');
    assert.equal(text, `vigil-agent: unknown argument "--confg"\n\n${USAGE}\n`);
    assert.match(text, /\n {7}vigil-agent restore --store DIR/);
  });

  test('the output is chosen by whether stderr is a terminal', () => {
    for (const isTTY of [true, false]) {
      const written: string[] = [];
      const logged: string[] = [];
      const out = { isTTY, write: (t: string) => written.push(t), log: createLogger({ write: (l) => logged.push(l) }) };
      reportConfigError(error, out);
      reportCommandLineError('--config FILE is required', out);
      if (isTTY) {
        assert.deepEqual(written, [configErrorText(error), commandLineErrorText('--config FILE is required')]);
        assert.deepEqual(logged, []);
      } else {
        assert.deepEqual(written, []);
        const [config, usage] = logged.map((l) => JSON.parse(l) as Record<string, unknown>);
        assert.deepEqual(
          [config?.msg, config?.file, config?.error, config?.problems, config?.help],
          ['invalid configuration', error.file, error.message, problems, HELP]
        );
        assert.deepEqual(
          [usage?.msg, usage?.error, usage?.help, usage?.usage],
          ['invalid command line', '--config FILE is required', HELP, undefined]
        );
      }
    }
  });

  // A real pseudo-terminal, where util-linux script(1) is installed.
  const script = spawnSync('script', ['--version'], { encoding: 'utf8' });
  test(
    'the agent under a pseudo-terminal prints the problems and the usage as text',
    { skip: script.status !== 0 && 'script(1) is not installed' },
    () => {
      const file = path.join(FIXTURES, 'unknown-key-typo.yaml');
      const run = (args: string) =>
        spawnSync(
          'script',
          ['-qec', `${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(CLI)} ${args}`, '/dev/null'],
          { cwd: AGENT_DIR, encoding: 'utf8', timeout: 30_000 }
        );
      const config = run(`run --config ${JSON.stringify(file)}`);
      assert.equal(config.status, 2, config.stdout);
      const text = config.stdout.replace(/\r\n/g, '\n');
      assert.equal(
        text,
        `vigil-agent: invalid configuration ${file} (2 problems):\n  ${expectation(file)}\n  stateDir: required\n`
      );
      const usage = run('run --confg x');
      assert.equal(usage.status, 2, usage.stdout);
      assert.equal(usage.stdout.replace(/\r\n/g, '\n'), commandLineErrorText('unknown argument "--confg"'));
    }
  );
});
