import { parseDurationSeconds, validateOptions } from './settings';

describe('validateOptions', () => {
  const cases: Array<{ name: string; options: Parameters<typeof validateOptions>[0]; errors: Record<string, string> }> =
    [
      { name: 'empty settings are valid', options: {}, errors: {} },
      {
        name: 'a complete fleet is valid',
        options: { pollInterval: '10s', agents: [{ name: 'a', url: 'http://127.0.0.1:7070', cluster: 'c' }] },
        errors: {},
      },
      {
        name: 'poll interval below one second',
        options: { pollInterval: '500ms' },
        errors: { pollInterval: 'must be a duration of at least 1s, e.g. 10s' },
      },
      {
        name: 'poll interval that is no duration',
        options: { pollInterval: 'often' },
        errors: { pollInterval: 'must be a duration of at least 1s, e.g. 10s' },
      },
      {
        name: 'agent without a name',
        options: { agents: [{ name: ' ', url: 'http://x:1' }] },
        errors: { 'agents[0].name': 'is required' },
      },
      {
        name: 'agent URL without a scheme',
        options: { agents: [{ name: 'a', url: '10.0.0.5:7070' }] },
        errors: { 'agents[0].url': 'must be an absolute http or https URL' },
      },
      {
        name: 'agent URL of another scheme',
        options: { agents: [{ name: 'a', url: 'ftp://x' }] },
        errors: { 'agents[0].url': 'must be an absolute http or https URL' },
      },
      {
        name: 'duplicate agent names',
        options: {
          agents: [
            { name: 'a', url: 'http://x:1' },
            { name: 'a', url: 'http://y:1' },
          ],
        },
        errors: { 'agents[1].name': 'duplicates the name "a"' },
      },
    ];
  it.each(cases)('$name', ({ options, errors }) => {
    expect(validateOptions(options)).toEqual(errors);
  });
});

describe('parseDurationSeconds', () => {
  it.each([
    ['10s', 10],
    ['1m30s', 90],
    ['250ms', 0.25],
    ['2h', 7200],
  ])('%s is %d seconds', (text, seconds) => {
    expect(parseDurationSeconds(text)).toBe(seconds);
  });
  it('rejects text that is no duration', () => {
    expect(parseDurationSeconds('10')).toBeUndefined();
  });
});
