import React, { useMemo, useState } from 'react';
import { dateTimeFormatTimeAgo, formattedValueToString, getValueFormat } from '@grafana/data';
import { PluginPage } from '@grafana/runtime';
import { Alert, Button, InteractiveTable, LinkButton, Stack, Text, TextLink } from '@grafana/ui';

import { EventsTable } from '../components/EventsTable/EventsTable';
import { RestartAction } from '../../shared/RestartAction/RestartAction';
import { Section } from '../components/Section/Section';
import { StateBadge } from '../../shared/StateBadge/StateBadge';
import { restartRoleOf } from '../../shared/data/datasource';
import { type AgentDetail, type BudgetBreakdown, getAgent, type LastAction, pollNow } from '../../shared/resources';
import { useAsyncValue } from '../data/useAsyncValue';
import { lastHours, useVigilQuery } from '../data/useVigilQuery';
import { currentOrgRole, restartPermission } from '../../shared/roles';
import { testIds } from '../../shared/testIds';
import { DASHBOARDS, prefixRoute, ROUTES } from '../../constants';
import { statusRows } from '../../shared/rows';
import { ALLOWANCE_LABELS } from '../../shared/budget';
import { type AppSettings, chosenDatasource } from '../appSettings';
import { eventRows, type EventRow } from '../frames';

const seconds = (v?: number | null) =>
  v === undefined || v === null ? 'not measured yet' : formattedValueToString(getValueFormat('s')(v));

interface BudgetLine {
  id: string;
  part: string;
  seconds: number;
  source: string;
}

/**
 * A diagnosis ("dns ok (…); tcp failed (…); …; path ok (…)") as one line per step: DNS, TCP
 * connect, HTTP, ICMP echo and the path trace (pkg/agentclient's Diagnosis.String).
 */
export function diagnosisSteps(text: string): string[] {
  return text.split(/; (?=(?:dns|tcp|http|ping|path) )/);
}

/** The budget as lines a person can add up: response time, processing, each allowance, total. */
export function budgetLines(budget: BudgetBreakdown): BudgetLine[] {
  const lines: BudgetLine[] = [];
  if (budget.responseTimeSeconds !== undefined) {
    lines.push({
      id: 'rt',
      part: 'Response time (RTT p99 or configured)',
      seconds: budget.responseTimeSeconds,
      source: '',
    });
  }
  if (budget.processingSeconds !== undefined) {
    lines.push({ id: 'proc', part: 'Processing', seconds: budget.processingSeconds, source: 'configured' });
  }
  for (const a of budget.allowances) {
    const label = ALLOWANCE_LABELS[a.name as keyof typeof ALLOWANCE_LABELS] ?? a.name;
    lines.push({ id: `a-${a.name}`, part: `Allowance: ${label}`, seconds: a.seconds, source: a.source ?? '' });
  }
  lines.push({
    id: 'total',
    part: `Total${budget.combine ? ` (allowances combined by ${budget.combine})` : ''}`,
    seconds: budget.totalSeconds,
    source: budget.mode ?? '',
  });
  return lines;
}

type BudgetCell = { row: { original: BudgetLine } };
const budgetColumns = [
  { id: 'part', header: 'Part' },
  { id: 'seconds', header: 'Seconds', cell: ({ row }: BudgetCell) => seconds(row.original.seconds) },
  { id: 'source', header: 'Configured or measured' },
];

type ProcessCell = { row: { original: ProcessLine } };

/** The monitor's last restart or stop of a process, as the backend's agent view sends it. */
export function lastActionText(a?: LastAction): string {
  if (!a) {
    return '';
  }
  const by = a.manual || a.by !== 'auto' ? `by ${a.by}` : 'by auto-restart';
  return `${a.kind} ${a.ok ? 'ok' : 'failed'} ${by}, ${dateTimeFormatTimeAgo(Date.parse(a.at))}`;
}

interface ProcessLine {
  id: string;
  name: string;
  state: string;
  stateCode: number;
  reason: string;
  generation?: number;
  lag?: number | null;
  lastAction?: LastAction;
}

export default function Agent({ agent, settings }: { agent: string; settings: AppSettings }) {
  const datasource = chosenDatasource(settings);
  const uid = datasource?.uid;
  const [range, setRange] = useState(() => lastHours(24));
  const detail = useAsyncValue<AgentDetail | undefined>(
    () => (uid ? getAgent(uid, agent) : Promise.resolve(undefined)),
    [uid, agent, range]
  );
  const status = useVigilQuery(uid, { queryType: 'status', agents: [agent] }, range);
  const events = useVigilQuery(uid, { queryType: 'events', agents: [agent] }, range);
  const permission = restartPermission(currentOrgRole(), restartRoleOf(datasource));
  const [polling, setPolling] = useState<string>();

  const rows = useMemo(
    () => statusRows(status.value ?? []).rows.filter((r) => r.agent === agent),
    [status.value, agent]
  );
  const d = detail.value;
  const processes: ProcessLine[] = d?.processes.length
    ? d.processes.map((p) => {
        const row = rows.find((r) => r.process === p.name);
        return {
          id: p.name,
          name: p.name,
          state: p.state ?? row?.state ?? '',
          stateCode: p.stateCode ?? row?.stateCode ?? 6,
          reason: p.reason ?? row?.reason ?? '',
          generation: p.generation,
          lag: p.lagSeconds ?? row?.lagSeconds,
          lastAction: p.lastAction,
        };
      })
    : rows
        .filter((r) => r.process)
        .map((r) => ({
          id: r.process,
          name: r.process,
          state: r.state,
          stateCode: r.stateCode,
          reason: r.reason,
          generation: r.generation,
          lag: r.lagSeconds,
        }));
  const head = rows[0];
  const agentState = d?.state ?? head?.state;
  const agentCode = d?.stateCode ?? head?.stateCode;
  const detailEvents: EventRow[] = d?.events.length
    ? d.events.map((e, i) => ({
        id: String(i),
        time: Date.parse(e.time),
        agent,
        process: e.process ?? '',
        kind: e.kind,
        text: e.text ?? '',
        user: e.user ?? '',
      }))
    : eventRows(events.value ?? []);

  // Stable columns: a new cell renderer on every render would remount the restart action and lose
  // its result.
  const processColumns = useMemo(
    () => [
      { id: 'name', header: 'Process' },
      {
        id: 'state',
        header: 'State',
        cell: ({ row }: ProcessCell) => <StateBadge state={row.original.state} code={row.original.stateCode} />,
      },
      { id: 'reason', header: 'Reason' },
      { id: 'generation', header: 'Generation' },
      { id: 'lag', header: 'Protection lag', cell: ({ row }: ProcessCell) => seconds(row.original.lag) },
      {
        id: 'lastAction',
        header: 'Last action',
        cell: ({ row }: ProcessCell) => lastActionText(row.original.lastAction),
      },
      {
        id: 'restart',
        header: '',
        cell: ({ row }: ProcessCell) => (
          <RestartAction
            datasourceUid={uid}
            agent={agent}
            process={row.original.name}
            generation={row.original.generation}
            permission={restartPermission(currentOrgRole(), permission.minimum)}
            reasonRequired={false}
            onRestarted={() => setRange(lastHours(24))}
          />
        ),
      },
    ],
    [uid, agent, permission.minimum, setRange]
  );

  const poll = async () => {
    setPolling('Polling…');
    try {
      await pollNow(uid!, agent);
      setPolling(undefined);
      setRange(lastHours(24));
    } catch (err) {
      setPolling(`Poll failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  return (
    <PluginPage pageNav={{ text: agent, subTitle: 'CDP agent' }}>
      <div data-testid={testIds.agent.page}>
        <Stack direction="column" gap={3}>
          <Stack direction="row" gap={2} alignItems="center" justifyContent="space-between">
            <TextLink href={prefixRoute(ROUTES.Fleet)} icon="arrow-left" inline={false}>
              Fleet
            </TextLink>
            <Stack direction="row" gap={1}>
              <Button icon="sync" variant="secondary" onClick={poll} disabled={!uid || polling === 'Polling…'}>
                Poll now
              </Button>
              <LinkButton
                variant="secondary"
                icon="apps"
                href={`/d/${DASHBOARDS.agent.uid}?var-agent=${encodeURIComponent(agent)}`}
              >
                Agent dashboard
              </LinkButton>
            </Stack>
          </Stack>
          {!datasource && <Alert severity="info" title="No Vigil CDP datasource yet" />}
          {polling && <Text color={polling.startsWith('Poll failed') ? 'error' : 'secondary'}>{polling}</Text>}
          <Section title={`Agent ${agent}`} loading={status.loading && detail.loading} error={status.error}>
            <Stack direction="row" gap={2} alignItems="center" wrap="wrap">
              {agentState !== undefined && <StateBadge state={agentState} code={agentCode} />}
              <Text>{d?.reason ?? head?.reason ?? ''}</Text>
              <Text color="secondary">
                cluster {d?.cluster || head?.cluster || 'none'}
                {(d?.role ?? head?.role) ? ` (${d?.role ?? head?.role})` : ''}
              </Text>
              <Text color="secondary">RTT {seconds(d?.rttSeconds ?? head?.rttSeconds)}</Text>
              <Text color="secondary">protection lag {seconds(d?.lagSeconds ?? head?.lagSeconds)}</Text>
            </Stack>
            {d?.diagnosis && (
              <div data-testid={testIds.agent.diagnosis}>
                <Text color="secondary">Where the path to the agent breaks (checked when it turned FAILED):</Text>
                <ul>
                  {diagnosisSteps(d.diagnosis).map((step) => (
                    <li key={step}>
                      <Text>{step}</Text>
                    </li>
                  ))}
                </ul>
              </div>
            )}
            {detail.error && (
              <Alert severity="warning" title="Agent details unavailable">
                {detail.error.message}
              </Alert>
            )}
          </Section>
          <Section title="Processes">
            <div data-testid={testIds.agent.processes}>
              {processes.length === 0 ? (
                <Text color="secondary">No processes reported yet.</Text>
              ) : (
                <InteractiveTable columns={processColumns} data={processes} getRowId={(p: ProcessLine) => p.id} />
              )}
            </div>
          </Section>
          <Section title="Timeout budget">
            <div data-testid={testIds.agent.budget}>
              {d?.budget ? (
                <InteractiveTable
                  columns={budgetColumns}
                  data={budgetLines(d.budget)}
                  getRowId={(l: BudgetLine) => l.id}
                />
              ) : (
                <Text color="secondary">
                  {head?.budgetSeconds !== undefined
                    ? `Budget in force: ${seconds(head.budgetSeconds)} (no breakdown available).`
                    : 'No budget reported yet.'}
                </Text>
              )}
            </div>
          </Section>
          <Section title="Events" error={d?.events.length ? undefined : events.error}>
            <EventsTable events={detailEvents} testId={testIds.agent.events} />
          </Section>
        </Stack>
      </div>
    </PluginPage>
  );
}
