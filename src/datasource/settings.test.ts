import { readFileSync } from 'node:fs';
import path from 'node:path';

import { agentUrlProblem, validateOptions } from './settings';
import type { VigilOptions } from './types';

// The agent URL rule's cases, shared with the backend's tests (pkg/fleet), which apply the same rule.
const AGENT_URLS = path.resolve(__dirname, '../../pkg/fleet/testdata/agent-urls.json');
const agentUrlCases: Array<{ url: string; problem: string; secretsPlace?: boolean }> = JSON.parse(
  readFileSync(AGENT_URLS, 'utf8')
).cases;

describe("agentUrlProblem: the backend's rule", () => {
  it.each(agentUrlCases)('$url', ({ url, problem, secretsPlace }) => {
    expect(agentUrlProblem(url)).toEqual({ problem, secretsPlace: secretsPlace ?? false });
    const errors = validateOptions({ agents: [agent('a', 'http://a:1'), agent('b', url)] });
    const want =
      problem && (secretsPlace ? `${problem}; tokens belong in secureJsonData (readToken, controlToken)` : problem);
    expect(errors['agents[1].url']).toBe(want || undefined);
    expect(JSON.stringify(errors)).not.toContain('s3cret');
  });
});

const agent = (name: string, url = `http://${name}:7070`) => ({ name, url });

describe('validateOptions', () => {
  const cases: Array<{ name: string; options: VigilOptions; errors: Record<string, string> }> = [
    { name: 'a one-agent fleet is valid', options: { agents: [agent('a')] }, errors: {} },
    {
      name: 'a complete fleet with defaults and overrides is valid',
      options: {
        pollInterval: '10s',
        defaults: {
          budget: { responseTime: '500ms', processing: '0', failover: '45s', restart: 120 as unknown as string },
          measured: { percentile: 99.5, floor: '0', ceiling: '10m', minSamples: 3 },
          autoRestart: { enabled: true, maxRestarts: 2, window: '5m', backoffInitial: '1s', backoffMax: '1m' },
          rpo: '90s',
        },
        agents: [{ ...agent('node-a'), cluster: 'sql-ha', budget: { failover: '120s' }, rpo: '0' }],
        restartRole: 'Admin',
        historyPath: '/var/lib/vigil',
      },
      errors: {},
    },
    { name: 'an empty fleet', options: {}, errors: { agents: 'at least one agent is required' } },
    {
      name: 'poll interval below one second',
      options: { pollInterval: '500ms', agents: [agent('a')] },
      errors: { pollInterval: '500ms is below the minimum of 1s' },
    },
    {
      name: 'poll interval that is no duration',
      options: { pollInterval: 'often', agents: [agent('a')] },
      errors: { pollInterval: 'often is not a duration (examples: 10s, 1m30s)' },
    },
    {
      name: 'agent without a name',
      options: { agents: [{ name: ' ', url: 'http://x:1' }] },
      errors: { 'agents[0].name': 'is required' },
    },
    {
      name: 'agent name with a space',
      options: { agents: [{ name: 'db 1', url: 'http://x:1' }] },
      errors: { 'agents[0].name': `"db 1" must be 1 to 63 letters, digits, '-' or '_'` },
    },
    {
      name: 'agent URL without a scheme',
      options: { agents: [agent('a', '10.0.0.5:7070')] },
      errors: { 'agents[0].url': 'must be an absolute http or https URL' },
    },
    {
      name: 'agent URL of another scheme',
      options: { agents: [agent('a', 'ftp://x')] },
      errors: { 'agents[0].url': 'must be an absolute http or https URL' },
    },
    {
      name: 'agent URL missing',
      options: { agents: [agent('a', '')] },
      errors: { 'agents[0].url': 'is required' },
    },
    {
      name: 'duplicate agent names',
      options: { agents: [agent('a', 'http://x:1'), agent('b'), agent('a', 'http://y:1')] },
      errors: { 'agents[2].name': '"a" is already used by agents[0]' },
    },
    {
      name: 'a budget factor that is no duration',
      options: { defaults: { budget: { failover: 'a minute' } }, agents: [agent('a')] },
      errors: { 'defaults.budget.failover': 'a minute is not a duration (examples: 10s, 1m30s, 0)' },
    },
    {
      name: 'a negative allowance in an agent override',
      options: { agents: [{ ...agent('a'), budget: { restart: '-5s' } }] },
      errors: { 'agents[0].budget.restart': '-5s must not be negative' },
    },
    {
      name: 'combine and mode outside their choices',
      options: {
        defaults: { budget: { combine: 'avg' as never, mode: 'guessed' as never } },
        agents: [agent('a')],
      },
      errors: {
        'defaults.budget.combine': 'avg must be max or sum',
        'defaults.budget.mode': 'guessed must be configured or measured',
      },
    },
    {
      name: 'measured settings out of range',
      options: {
        defaults: { measured: { percentile: 0, minSamples: 0, floor: '20m' } },
        agents: [agent('a')],
      },
      errors: {
        'defaults.measured.percentile': '0 must be above 0 and at most 100',
        'defaults.measured.minSamples': '0 must be at least 1',
        'defaults.measured.floor': '20m is above measured.ceiling 15m',
      },
    },
    {
      name: 'numbers typed as text',
      options: {
        defaults: { measured: { percentile: 'high' as never }, autoRestart: { maxRestarts: 1.5 } },
        agents: [agent('a')],
      },
      errors: {
        'defaults.measured.percentile': 'high must be a number',
        'defaults.autoRestart.maxRestarts': '1.5 must be a whole number',
      },
    },
    {
      name: 'an agent back-off above the fleet maximum is named on the agent',
      options: {
        defaults: { autoRestart: { backoffMax: '1m' } },
        agents: [agent('a'), { ...agent('b'), autoRestart: { backoffInitial: '2m' } }],
      },
      errors: { 'agents[1].autoRestart.backoffInitial': '2m is above autoRestart.backoffMax 1m' },
    },
    {
      name: 'a restart role Grafana does not have',
      options: { restartRole: 'Owner' as never, agents: [agent('a')] },
      errors: { restartRole: 'Owner must be one of Viewer, Editor, Admin' },
    },
  ];
  it.each(cases)('$name', ({ options, errors }) => {
    expect(validateOptions(options)).toEqual(errors);
  });
});
