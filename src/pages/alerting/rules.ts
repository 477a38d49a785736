// The Vigil alert rule template: one rule group against the datasource's `metrics` query. The same
// builder produces provisioning/alerting/vigil-cdp-rules.yaml (a Jest test keeps them equal) and
// what the Configuration page installs through Grafana's provisioning HTTP API.

export const RULE_GROUP = 'Vigil CDP';
export const RULE_FOLDER = 'Vigil CDP';
export const AGENT_DASHBOARD_UID = 'vigil-cdp-agent-detail';
export const RUNBOOK_URL = 'https://github.com/vigil-cdp/vigil/blob/main/docs/runbook.md';

export interface RuleTemplateOptions {
  datasourceUid: string;
  /** The datasource's poll interval; also the group's evaluation interval. */
  pollIntervalSeconds: number;
  /** The budget's restart allowance: how long a restart may take before it counts. */
  restartAllowanceSeconds: number;
  /** The protection lag objective. */
  rpoSeconds: number;
}

export const DEFAULT_TEMPLATE_OPTIONS: Omit<RuleTemplateOptions, 'datasourceUid'> = {
  pollIntervalSeconds: 10,
  restartAllowanceSeconds: 180,
  rpoSeconds: 60,
};

export interface RelativeTimeRange {
  from: number;
  to: number;
}

export interface AlertQuery {
  refId: string;
  relativeTimeRange: RelativeTimeRange;
  datasourceUid: string;
  model: Record<string, unknown>;
}

/** A rule as both Grafana's file provisioning and its provisioning HTTP API spell it. */
export interface AlertRule {
  uid: string;
  title: string;
  condition: string;
  data: AlertQuery[];
  noDataState: 'OK' | 'NoData' | 'Alerting' | 'KeepLast';
  execErrState: 'OK' | 'Error' | 'Alerting';
  for: string;
  annotations: Record<string, string>;
  labels: Record<string, string>;
  isPaused: boolean;
}

export interface RuleGroup {
  name: string;
  folder: string;
  interval: string;
  rules: AlertRule[];
}

const EXPR = '__expr__';

/** Grafana duration: whole minutes and seconds ("3m10s", "30s", "0s"). */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  const m = Math.floor(s / 60);
  const rest = s % 60;
  if (m === 0) {
    return `${rest}s`;
  }
  return rest === 0 ? `${m}m` : `${m}m${rest}s`;
}

function roundUp(seconds: number, step: number) {
  return Math.ceil(seconds / step) * step;
}

/** Grafana rule uids are at most 40 characters of letters, digits, '-' and '_'. */
export function ruleUid(datasourceUid: string, key: string): string {
  const prefix = datasourceUid.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 39 - key.length);
  return `${prefix}-${key}`;
}

function metricQuery(refId: string, datasourceUid: string, metric: string, windowSeconds: number): AlertQuery {
  return {
    refId,
    relativeTimeRange: { from: windowSeconds, to: 0 },
    datasourceUid,
    model: { refId, queryType: 'metrics', metrics: [metric], intervalMs: 10000, maxDataPoints: 43200 },
  };
}

function expression(refId: string, model: Record<string, unknown>): AlertQuery {
  return {
    refId,
    relativeTimeRange: { from: 0, to: 0 },
    datasourceUid: EXPR,
    model: { refId, datasource: { type: EXPR, uid: EXPR }, ...model },
  };
}

const last = (refId: string, of: string) =>
  // Without dropping NaN, one missed sample would resolve a firing alert.
  expression(refId, { type: 'reduce', expression: of, reducer: 'last', settings: { mode: 'dropNN' } });

const math = (refId: string, formula: string) => expression(refId, { type: 'math', expression: formula });

/** A reduced value, or `value` where there is none (so that a formula on it never yields no data). */
const orElse = (refId: string, of: string, value: number) =>
  expression(refId, {
    type: 'reduce',
    expression: of,
    reducer: 'last',
    settings: { mode: 'replaceNN', replaceWithValue: value },
  });

const above = (refId: string, of: string, threshold: number) =>
  expression(refId, {
    type: 'threshold',
    expression: of,
    conditions: [{ evaluator: { type: 'gt', params: [threshold] } }],
  });

const STATE_NAME =
  '{{ if eq $values.B.Value 5.0 }}FAILED{{ else if eq $values.B.Value 4.0 }}DEGRADED{{ else if eq $values.B.Value 3.0 }}GRACE{{ else if eq $values.B.Value 2.0 }}RESTARTING{{ else if eq $values.B.Value 1.0 }}STANDBY{{ else if eq $values.B.Value 0.0 }}OK{{ else }}UNKNOWN{{ end }}';

function annotations(anchor: string, summary: string, description: string, extra: Record<string, string> = {}) {
  return {
    summary,
    description,
    runbook_url: `${RUNBOOK_URL}#${anchor}`,
    dashboard_url: `/d/${AGENT_DASHBOARD_UID}/cdp-agent-detail?var-agent={{ $labels.agent }}`,
    ...extra,
  };
}

// State codes (src/shared/states.ts). UNKNOWN is what the datasource answers for an agent the monitor
// has not judged since it (re)started, and for an answer it cannot understand: never OK.
const DEGRADED = 4;
const FAILED = 5;
const UNKNOWN = 6;

// A value missing from a rule's window keeps the instance in its last state: it neither resolves a
// firing alert nor reports OK for an agent nothing is known of. A monitor that answers nothing at all
// is the "monitor stopped" rule's alert.
const KEEP_LAST = 'KeepLast';

export function buildRuleGroup(options: RuleTemplateOptions): RuleGroup {
  const { datasourceUid: ds, pollIntervalSeconds: poll, restartAllowanceSeconds, rpoSeconds } = options;
  const window = Math.max(600, poll * 10);
  const notProtectingFor = roundUp(poll + restartAllowanceSeconds, poll);
  const staleAfter = 3 * poll;

  const rules: AlertRule[] = [
    {
      uid: ruleUid(ds, 'failed'),
      title: 'CDP client failed',
      condition: 'C',
      data: [
        metricQuery('A', ds, 'stateCode', window),
        last('B', 'A'),
        math('C', `$B == ${FAILED} || $B == ${UNKNOWN}`),
        metricQuery('D', ds, 'budgetSeconds', window),
        last('E', 'D'),
      ],
      noDataState: KEEP_LAST,
      execErrState: 'Error',
      for: '0s',
      annotations: annotations(
        'cdp-client-failed',
        'CDP client {{ $labels.agent }} failed',
        'Agent {{ $labels.agent }} (cluster {{ $labels.cluster }}) is {{ if eq $values.B.Value 6.0 }}UNKNOWN: the monitor cannot judge it (not polled since the monitor started, or its answer is not understood){{ else }}FAILED: silent beyond its budget of {{ $values.E.Value }} s, or CDP is down and restarting it keeps failing{{ end }}.',
        { state: STATE_NAME, budget_seconds: '{{ $values.E.Value }}' }
      ),
      labels: { severity: 'critical', service: 'vigil-cdp' },
      isPaused: false,
    },
    {
      uid: ruleUid(ds, 'not-protecting'),
      title: 'CDP not protecting',
      condition: 'F',
      data: [
        metricQuery('A', ds, 'stateCode', window),
        last('B', 'A'),
        metricQuery('C', ds, 'processRunning', window),
        last('D', 'C'),
        // A process with no running value in the window (not expected here, or its agent silent or
        // not judged) counts as running: its agent's state decides, and the formula always has a value.
        orElse('E', 'D', 1),
        math('F', `$E == 0 || $B == ${DEGRADED} || $B == ${UNKNOWN}`),
      ],
      noDataState: KEEP_LAST,
      execErrState: 'Error',
      // One poll to notice, plus the restart allowance: a successful auto-restart pages nobody.
      for: duration(notProtectingFor),
      annotations: annotations(
        'cdp-not-protecting',
        'CDP is not protecting {{ $labels.agent }}',
        'On {{ $labels.agent }} (cluster {{ $labels.cluster }}) CDP process {{ $labels.process }} should run but does not, or the client is DEGRADED or UNKNOWN, for longer than a poll interval plus the restart allowance.',
        { state: STATE_NAME }
      ),
      labels: { severity: 'critical', service: 'vigil-cdp' },
      isPaused: false,
    },
    {
      uid: ruleUid(ds, 'protection-lag'),
      title: 'CDP protection lag above the RPO objective',
      condition: 'C',
      data: [metricQuery('A', ds, 'protectionLagSeconds', window), last('B', 'A'), above('C', 'B', rpoSeconds)],
      noDataState: KEEP_LAST,
      execErrState: 'Error',
      for: duration(roundUp(poll * 3, poll)),
      annotations: annotations(
        'cdp-protection-lag',
        'CDP on {{ $labels.agent }} lags {{ $values.B.Value }} s behind',
        `Process {{ $labels.process }} on {{ $labels.agent }} (cluster {{ $labels.cluster }}) has changes not yet replicated for {{ $values.B.Value }} s; the objective is ${rpoSeconds} s. An outage now would lose them.`
      ),
      labels: { severity: 'warning', service: 'vigil-cdp' },
      isPaused: false,
    },
    {
      uid: ruleUid(ds, 'auto-restart-suspended'),
      title: 'CDP auto-restart suspended',
      condition: 'C',
      data: [metricQuery('A', ds, 'autoRestartSuspended', window), last('B', 'A'), above('C', 'B', 0)],
      noDataState: KEEP_LAST,
      execErrState: 'Error',
      for: '0s',
      annotations: annotations(
        'cdp-auto-restart-suspended',
        'Auto-restart suspended for {{ $labels.process }} on {{ $labels.agent }}',
        'The flap guard stopped restarting {{ $labels.process }} on {{ $labels.agent }} (cluster {{ $labels.cluster }}): it kept crashing after restarts. Nothing restarts it automatically until a person does.'
      ),
      labels: { severity: 'warning', service: 'vigil-cdp' },
      isPaused: false,
    },
    {
      uid: ruleUid(ds, 'monitor-stopped'),
      title: 'CDP monitor stopped',
      condition: 'C',
      data: [metricQuery('A', ds, 'engineStalenessSeconds', window), last('B', 'A'), above('C', 'B', staleAfter)],
      // No engine series at all means the monitor is not running: that is this rule's alert.
      noDataState: 'Alerting',
      execErrState: 'Error',
      for: '0s',
      annotations: {
        summary: 'The Vigil CDP monitor stopped polling',
        description: `No completed poll cycle for {{ $values.B.Value }} s, more than three poll intervals (${staleAfter} s). Every other CDP alert is blind until it runs again.`,
        runbook_url: `${RUNBOOK_URL}#cdp-monitor-stopped`,
        dashboard_url: '/d/vigil-cdp-fleet-overview/cdp-fleet-overview',
      },
      labels: { severity: 'critical', service: 'vigil-cdp' },
      isPaused: false,
    },
    {
      uid: ruleUid(ds, 'agents-unpolled'),
      title: 'CDP agents not polled by any monitor',
      condition: 'C',
      data: [metricQuery('A', ds, 'unpolledAgents', window), last('B', 'A'), above('C', 'B', 0)],
      // Only a shared history (docs/ha.md) has this series: without one it never fires.
      noDataState: KEEP_LAST,
      execErrState: 'Error',
      for: '0s',
      annotations: {
        summary: 'CDP agents not polled by any Vigil monitor',
        description:
          '{{ $values.B.Value }} agents have had no poll recorded by any monitor sharing the history for two poll intervals: a member died and its agents were not taken over, or the members cannot reach each other or PostgreSQL. Save & test on the datasource lists them.',
        runbook_url: `${RUNBOOK_URL}#cdp-agents-not-polled-by-any-monitor`,
        dashboard_url: '/d/vigil-cdp-fleet-overview/cdp-fleet-overview',
      },
      labels: { severity: 'critical', service: 'vigil-cdp' },
      isPaused: false,
    },
  ];
  return { name: RULE_GROUP, folder: RULE_FOLDER, interval: duration(poll), rules };
}

/** Grafana's alerting file-provisioning document for the group. */
export function provisioningFile(options: RuleTemplateOptions, orgId = 1) {
  const group = buildRuleGroup(options);
  return { apiVersion: 1, groups: [{ orgId, ...group }] };
}

/** One rule as POST /api/v1/provisioning/alert-rules takes it. */
export function apiRule(rule: AlertRule, folderUID: string, orgID = 1) {
  return { ...rule, orgID, folderUID, ruleGroup: RULE_GROUP };
}
