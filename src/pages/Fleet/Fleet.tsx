import React, { useMemo, useState } from 'react';
import { dateTimeFormatTimeAgo, type PanelData, LoadingState } from '@grafana/data';
import { PanelRenderer, PluginPage } from '@grafana/runtime';
import { Alert, Button, Card, Grid, InteractiveTable, LinkButton, Stack, Text, TextLink } from '@grafana/ui';

import { EventsTable } from '../components/EventsTable/EventsTable';
import { Section } from '../components/Section/Section';
import { StateBadge } from '../../shared/StateBadge/StateBadge';
import { lastHours, useVigilQuery } from '../data/useVigilQuery';
import { useWidth } from '../data/useWidth';
import { testIds } from '../../shared/testIds';
import { agentUrl, DASHBOARDS, prefixRoute, ROUTES } from '../../constants';
import { statusRows, type StatusRow } from '../../shared/rows';
import { CLIENT_STATES, stateByCode, worseCode } from '../../shared/states';
import { type AppSettings, chosenDatasource } from '../appSettings';
import { eventRows } from '../frames';

/** Each agent counted once, under the worst state of its processes. */
export function countByState(rows: StatusRow[]): Record<string, number> {
  const worst = new Map<string, number>();
  for (const r of rows) {
    const prev = worst.get(r.agent);
    worst.set(r.agent, prev === undefined ? r.stateCode : worseCode(prev, r.stateCode));
  }
  const counts: Record<string, number> = Object.fromEntries(CLIENT_STATES.map((s) => [s.name, 0]));
  for (const code of worst.values()) {
    counts[stateByCode(code).name] += 1;
  }
  return counts;
}

type Row = StatusRow & { id: string };
type Cell = { row: { original: Row } };

export default function Fleet({ settings }: { settings: AppSettings }) {
  const datasource = chosenDatasource(settings);
  const uid = datasource?.uid;
  const [range, setRange] = useState(() => lastHours(6));
  const { ref: timelineRef, width: timelineWidth } = useWidth<HTMLDivElement>();
  const status = useVigilQuery(uid, { queryType: 'status' }, range);
  const timeline = useVigilQuery(uid, { queryType: 'timeline' }, range);
  const events = useVigilQuery(uid, { queryType: 'events' }, range);

  const parsed = useMemo(() => statusRows(status.value ?? []), [status.value]);
  const rows: Row[] = parsed.rows.map((r) => ({ ...r, id: `${r.agent}/${r.process}` }));
  const counts = countByState(parsed.rows);

  const columns = [
    {
      id: 'agent',
      header: 'Agent',
      cell: ({ row }: Cell) => (
        <span data-testid={testIds.fleet.agentLink(row.original.agent)}>
          <TextLink href={agentUrl(row.original.agent, uid)} inline={false}>
            {row.original.agent}
          </TextLink>
        </span>
      ),
    },
    { id: 'cluster', header: 'Cluster' },
    { id: 'process', header: 'Process' },
    {
      id: 'state',
      header: 'State',
      cell: ({ row }: Cell) => <StateBadge state={row.original.state} code={row.original.stateCode} />,
    },
    { id: 'reason', header: 'Reason' },
    {
      id: 'lagSeconds',
      header: 'Protection lag',
      cell: ({ row }: Cell) => (row.original.lagSeconds !== undefined ? `${row.original.lagSeconds} s` : ''),
    },
    {
      id: 'lastRestart',
      header: 'Last restart',
      cell: ({ row }: Cell) =>
        row.original.lastRestart !== undefined ? dateTimeFormatTimeAgo(row.original.lastRestart) : '',
    },
  ];

  const timelineData: PanelData = {
    series: timeline.value ?? [],
    state: timeline.loading ? LoadingState.Loading : LoadingState.Done,
    timeRange: range,
  };

  return (
    <PluginPage>
      <div data-testid={testIds.fleet.page}>
        {!datasource ? (
          <Alert severity="info" title="No Vigil CDP datasource yet">
            Add one with your agents, then choose it on the{' '}
            <TextLink href={prefixRoute(ROUTES.Configuration)}>Configuration</TextLink> page.
          </Alert>
        ) : (
          <Stack direction="column" gap={3}>
            <Stack direction="row" gap={2} alignItems="center" justifyContent="space-between">
              <Text color="secondary">
                Datasource <Text weight="medium">{datasource.name}</Text>: each agent counted under the worst state of
                its processes.
              </Text>
              <Stack direction="row" gap={1}>
                <Button icon="sync" variant="secondary" onClick={() => setRange(lastHours(6))}>
                  Refresh
                </Button>
                <LinkButton variant="secondary" href={`/d/${DASHBOARDS.fleet.uid}`} icon="apps">
                  Fleet dashboard
                </LinkButton>
              </Stack>
            </Stack>
            <Section title="Agents by state" loading={status.loading && !status.value} error={status.error}>
              {parsed.problem ? (
                <Alert severity="warning" title="Unexpected status answer">
                  {parsed.problem}
                </Alert>
              ) : (
                <div data-testid={testIds.fleet.counts}>
                  <Grid gap={1} minColumnWidth={13}>
                    {CLIENT_STATES.map((s) => (
                      <Card key={s.name} noMargin data-testid={testIds.fleet.count(s.name)}>
                        <Card.Heading>{counts[s.name]}</Card.Heading>
                        <Card.Description>
                          <StateBadge state={s.name} code={s.code} />
                        </Card.Description>
                      </Card>
                    ))}
                  </Grid>
                </div>
              )}
            </Section>
            <Section title="Fleet" loading={status.loading && !status.value} error={status.error}>
              {rows.length === 0 ? (
                <Text color="secondary">No agents: configure the fleet in the Vigil CDP datasource.</Text>
              ) : (
                <div data-testid={testIds.fleet.table}>
                  <InteractiveTable columns={columns} data={rows} getRowId={(r: Row) => r.id} />
                </div>
              )}
            </Section>
            <Section title="State over the last 6 hours" error={timeline.error}>
              <div ref={timelineRef}>
                <PanelRenderer
                  pluginId="state-timeline"
                  title="State"
                  data={timelineData}
                  width={timelineWidth}
                  height={Math.max(150, 40 * Math.max(1, (timeline.value ?? []).length))}
                  options={{ showValue: 'never', mergeValues: true }}
                />
              </div>
            </Section>
            <Section title="Recent events" loading={events.loading && !events.value} error={events.error}>
              <EventsTable events={eventRows(events.value ?? [])} testId={testIds.fleet.events} />
            </Section>
            <Section title="State codes">
              <Text color="secondary">Alert rules, value mappings and the metrics query use these codes.</Text>
              <Stack direction="column" gap={0.5}>
                {CLIENT_STATES.map((s) => (
                  <Stack key={s.code} direction="row" gap={1}>
                    <Text weight="medium">
                      {s.code} {s.name}
                    </Text>
                    <Text color="secondary">{s.meaning}</Text>
                  </Stack>
                ))}
              </Stack>
            </Section>
          </Stack>
        )}
      </div>
    </PluginPage>
  );
}
