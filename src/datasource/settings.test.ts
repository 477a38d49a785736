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

// The settings' cases, shared with the backend's tests (pkg/models), which report the same problems.
const settingsCases: Array<{ name: string; jsonData: VigilOptions; problems: Record<string, string> }> = JSON.parse(
  readFileSync(path.resolve(__dirname, '../../pkg/models/testdata/settings.json'), 'utf8')
).cases;

describe("validateOptions: the backend's problems", () => {
  it.each(settingsCases)('$name', ({ jsonData, problems }) => {
    expect(validateOptions(jsonData)).toEqual(problems);
  });
});

describe('push agents (docs/push.md)', () => {
  it('need no URL; polled agents still do', () => {
    const errors = validateOptions({
      agents: [{ name: 'nat', transport: 'push' }, { name: 'polled' }],
    } as unknown as VigilOptions);
    expect(errors['agents[0].url']).toBeUndefined();
    expect(errors['agents[1].url']).toBe('is required');
  });
});
