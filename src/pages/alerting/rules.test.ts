/**
 * yaml's browser build is an ES module; its node build is not.
 * @jest-environment-options {"customExportConditions": ["node", "require"]}
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

import {
  type AlertRule,
  apiRule,
  buildRuleGroup,
  DEFAULT_TEMPLATE_OPTIONS,
  duration,
  provisioningFile,
  ruleUid,
} from './rules';

const PROVISIONED = path.resolve(__dirname, '../../../provisioning/alerting/vigil-cdp-rules.yaml');

describe('alert rule template', () => {
  const options = { datasourceUid: 'vigil-cdp', ...DEFAULT_TEMPLATE_OPTIONS };

  it('is what provisioning/alerting/vigil-cdp-rules.yaml provisions', () => {
    const file = parse(readFileSync(PROVISIONED, 'utf8'));
    expect(file).toEqual(provisioningFile(options));
  });

  it('has the five rules of the issue and the shared history rule, each with a condition among its refIds', () => {
    const { rules } = buildRuleGroup(options);
    expect(rules.map((r) => r.title)).toEqual([
      'CDP client failed',
      'CDP not protecting',
      'CDP protection lag above the RPO objective',
      'CDP auto-restart suspended',
      'CDP monitor stopped',
      'CDP agents not polled by any monitor',
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

  describe('an agent the monitor has not judged since it started (UNKNOWN) is never OK', () => {
    // One agent's instance of a rule, evaluated the way Grafana's server-side expressions do for the
    // nodes the template uses: metric queries answer the value `last` reduces them to (null: none),
    // reduce/dropNN keeps it, reduce/replaceNN replaces a null, math of `$X == n` joined by `||` is
    // null when any operand is, threshold `gt` compares. The condition's value decides the state:
    // null is NoData (the rule's noDataState), 0 is Normal, anything else holds the condition.
    type Values = Partial<Record<string, number | null>>;
    function evaluate(rule: AlertRule, metrics: Values): number | null {
      const vars: Record<string, number | null> = {};
      for (const { refId, model } of rule.data) {
        const m = model as Record<string, any>;
        if (m.queryType === 'metrics') {
          vars[refId] = metrics[m.metrics[0]] ?? null;
        } else if (m.type === 'reduce') {
          const v = vars[m.expression];
          vars[refId] = v === null && m.settings.mode === 'replaceNN' ? m.settings.replaceWithValue : v;
        } else if (m.type === 'threshold') {
          const v = vars[m.expression];
          vars[refId] = v === null ? null : Number(v > m.conditions[0].evaluator.params[0]);
        } else if (m.type === 'math') {
          const terms = (m.expression as string).split('||').map((term) => {
            const [, name, n] = term.trim().match(/^\$(\w+) == (\d+)$/)!;
            return vars[name] === null ? null : Number(vars[name] === Number(n));
          });
          vars[refId] = terms.includes(null) ? null : Number(terms.some(Boolean));
        }
      }
      return vars[rule.condition];
    }
    const state = (rule: AlertRule, metrics: Values) => {
      const v = evaluate(rule, metrics);
      return v === null
        ? `NoData → ${rule.noDataState}`
        : v === 0
          ? 'Normal'
          : rule.for === '0s'
            ? 'Alerting'
            : 'Pending';
    };
    const rules = buildRuleGroup(options).rules;
    const rule = (title: string) => rules.find((r) => r.title === title)!;
    const unknown = { stateCode: 6 };

    it('the rules on the agent state hold it: the failed rule fires, "not protecting" is pending', () => {
      expect(state(rule('CDP client failed'), { ...unknown, budgetSeconds: 182 })).toBe('Alerting');
      // Its processes reported running before the restart, or nothing at all in the window.
      expect(state(rule('CDP not protecting'), { ...unknown, processRunning: 1 })).toBe('Pending');
      expect(state(rule('CDP not protecting'), { ...unknown, processRunning: null })).toBe('Pending');
    });

    it('they still tell OK, FAILED, DEGRADED, a stopped process and a passive node apart', () => {
      expect(state(rule('CDP client failed'), { stateCode: 0 })).toBe('Normal');
      expect(state(rule('CDP client failed'), { stateCode: 5 })).toBe('Alerting');
      expect(state(rule('CDP client failed'), { stateCode: 3 })).toBe('Normal');
      expect(state(rule('CDP not protecting'), { stateCode: 0, processRunning: 1 })).toBe('Normal');
      expect(state(rule('CDP not protecting'), { stateCode: 2, processRunning: 0 })).toBe('Pending');
      expect(state(rule('CDP not protecting'), { stateCode: 4, processRunning: 1 })).toBe('Pending');
      expect(state(rule('CDP not protecting'), { stateCode: 1, processRunning: null })).toBe('Normal');
    });

    it('no rule reports OK for a value it does not have', () => {
      for (const r of rules) {
        expect(r.noDataState).not.toBe('OK');
      }
      expect(state(rule('CDP client failed'), { stateCode: null })).toBe('NoData → KeepLast');
      expect(state(rule('CDP protection lag above the RPO objective'), {})).toBe('NoData → KeepLast');
      expect(state(rule('CDP auto-restart suspended'), {})).toBe('NoData → KeepLast');
      expect(state(rule('CDP monitor stopped'), {})).toBe('NoData → Alerting');
    });
  });
});
