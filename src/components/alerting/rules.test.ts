/**
 * yaml's browser build is an ES module; its node build is not.
 * @jest-environment-options {"customExportConditions": ["node", "require"]}
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

import { apiRule, buildRuleGroup, DEFAULT_TEMPLATE_OPTIONS, duration, provisioningFile, ruleUid } from './rules';

const PROVISIONED = path.resolve(__dirname, '../../../provisioning/alerting/vigil-cdp-rules.yaml');

describe('alert rule template', () => {
  const options = { datasourceUid: 'vigil-cdp', ...DEFAULT_TEMPLATE_OPTIONS };

  it('is what provisioning/alerting/vigil-cdp-rules.yaml provisions', () => {
    const file = parse(readFileSync(PROVISIONED, 'utf8'));
    expect(file).toEqual(provisioningFile(options));
  });

  it('has the five rules of the issue, each with a condition among its refIds', () => {
    const { rules } = buildRuleGroup(options);
    expect(rules.map((r) => r.title)).toEqual([
      'CDP client failed',
      'CDP not protecting',
      'CDP protection lag above the RPO objective',
      'CDP auto-restart suspended',
      'CDP monitor stopped',
    ]);
    for (const rule of rules) {
      expect(rule.data.map((d) => d.refId)).toContain(rule.condition);
      expect(rule.execErrState).not.toBe('OK');
      expect(Object.keys(rule.annotations)).toEqual(
        expect.arrayContaining(['summary', 'description', 'runbook_url', 'dashboard_url'])
      );
      expect(rule.uid.length).toBeLessThanOrEqual(40);
    }
  });

  it('waits one poll interval plus the restart allowance before "not protecting"', () => {
    const rule = (o: typeof options) => buildRuleGroup(o).rules.find((r) => r.title === 'CDP not protecting')!;
    expect(rule(options).for).toBe('3m10s');
    expect(rule({ ...options, pollIntervalSeconds: 30, restartAllowanceSeconds: 45 }).for).toBe('1m30s');
  });

  it('alerts on a stopped monitor when its series is stale or gone', () => {
    const rule = buildRuleGroup(options).rules.find((r) => r.title === 'CDP monitor stopped')!;
    expect(rule.noDataState).toBe('Alerting');
    expect(rule.data[2].model).toMatchObject({ type: 'threshold', conditions: [{ evaluator: { params: [30] } }] });
  });

  it('queries the chosen datasource and gives its rules their own uids', () => {
    const group = buildRuleGroup({ ...options, datasourceUid: 'P1809F7CD0C75ACF3' });
    const uids = group.rules.flatMap((r) => r.data.map((d) => d.datasourceUid));
    expect(new Set(uids)).toEqual(new Set(['P1809F7CD0C75ACF3', '__expr__']));
    expect(group.rules[0].uid).toBe('P1809F7CD0C75ACF3-failed');
    expect(ruleUid('a-very-long-datasource-uid-that-goes-on-and-on', 'monitor-stopped')).toHaveLength(40);
  });

  it('adds folder and group for the provisioning API', () => {
    const rule = buildRuleGroup(options).rules[0];
    expect(apiRule(rule, 'folder-1')).toMatchObject({ folderUID: 'folder-1', ruleGroup: 'Vigil CDP', orgID: 1 });
  });

  it('writes Grafana durations', () => {
    expect([0, 10, 60, 190, 3600].map(duration)).toEqual(['0s', '10s', '1m', '3m10s', '60m']);
  });
});
