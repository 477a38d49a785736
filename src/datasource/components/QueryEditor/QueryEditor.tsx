import React, { useEffect, useMemo } from 'react';
import type { QueryEditorProps } from '@grafana/data';
import {
  Alert,
  Combobox,
  InlineField,
  InlineFieldRow,
  MultiCombobox,
  RadioButtonGroup,
  Stack,
  type ComboboxOption,
} from '@grafana/ui';

import { CLIENT_STATES } from '../../../shared/states';
import { useAgents } from '../../data/useAgents';
import type { DataSource } from '../../datasource';
import { variableNames } from '../../templating';
import {
  ALERTING_DEFAULT_QUERY,
  isAlertingApp,
  METRICS,
  QUERY_TYPES,
  type QueryType,
  type VigilOptions,
  type VigilQuery,
} from '../../types';
import { testIds } from '../testIds';

type Props = QueryEditorProps<DataSource, VigilQuery, VigilOptions> & {
  /** Set where only one query type makes sense (annotations: events). */
  fixedQueryType?: QueryType;
};

export const QUERY_TYPE_DESCRIPTIONS: Record<QueryType, string> = {
  status: 'Current state of every agent and CDP process, as a table',
  timeline: 'State over the time range, one field per agent and process, for the State timeline',
  metrics: 'Numeric series (state code, up, lag, RTT, budget, restarts) for graphs and alert rules',
  events: 'Restarts, failures and diagnoses, as a table or as annotations',
};

const METRIC_OPTIONS = METRICS.map((m) => ({ label: m.name, value: m.name, description: m.description }));
const STATE_OPTIONS: Array<ComboboxOption<string>> = CLIENT_STATES.map((s) => ({
  label: `${s.name} (${s.code})`,
  value: s.name,
  description: s.meaning,
}));

const isVariable = (v: string) => v.startsWith('$');

/** The alert rule editor's new query, as Grafana shows it (its defaults under an empty model) or not. */
function isNewAlertQuery(query: VigilQuery): boolean {
  if (!query.queryType) {
    return true;
  }
  const same = (a: string[] | undefined, b: string[] | undefined) => (a ?? []).join('\n') === (b ?? []).join('\n');
  return (
    query.queryType === ALERTING_DEFAULT_QUERY.queryType &&
    same(query.metrics, ALERTING_DEFAULT_QUERY.metrics) &&
    same(query.agents, []) &&
    same(query.states, []) &&
    !query.cluster
  );
}

export function QueryEditor({ datasource, query, onChange, onRunQuery, fixedQueryType, app }: Props) {
  const { agents, clusters, loading, error } = useAgents(datasource);

  // In Grafana's alert rule editor a new query asks for the agents' state (metrics, stateCode), the
  // query every rule can reduce to one number per agent. Grafana shows its defaults over the stored
  // model without storing them, so they are stored here: the rule then runs what the editor shows.
  useEffect(() => {
    if (!fixedQueryType && isAlertingApp(app) && isNewAlertQuery(query)) {
      onChange(
        query.queryType
          ? { ...query }
          : {
              ...ALERTING_DEFAULT_QUERY,
              ...query,
              queryType: ALERTING_DEFAULT_QUERY.queryType,
              metrics: query.metrics?.length ? query.metrics : ALERTING_DEFAULT_QUERY.metrics,
            }
      );
    }
    // Once, when the editor opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const variables = useMemo(() => variableNames(), []);
  const selectedAgents = query.agents ?? [];
  const known = new Set(agents.map((a) => a.name));
  const unknownAgents = loading || error ? [] : selectedAgents.filter((a) => !isVariable(a) && !known.has(a));

  const update = (patch: Partial<VigilQuery>) => {
    onChange({ ...query, ...patch });
    onRunQuery();
  };

  const variableOptions = variables.map((v) => ({ label: v, value: v, description: 'dashboard variable' }));
  const agentOptions: Array<ComboboxOption<string>> = [
    ...agents.map((a) => ({
      label: a.name,
      value: a.name,
      description: a.cluster ? `cluster ${a.cluster}` : 'standalone',
    })),
    ...variableOptions,
  ];
  const clusterOptions: Array<ComboboxOption<string>> = [
    ...clusters.map((c) => ({ label: c, value: c })),
    ...variableOptions,
  ];

  return (
    <div data-testid={testIds.queryEditor.root}>
      <Stack direction="column" gap={0}>
        {!fixedQueryType && (
          <InlineField
            label="Query type"
            labelWidth={14}
            tooltip={QUERY_TYPE_DESCRIPTIONS[query.queryType ?? 'status']}
          >
            <RadioButtonGroup
              options={QUERY_TYPES.map((t) => ({ label: t, value: t, description: QUERY_TYPE_DESCRIPTIONS[t] }))}
              value={query.queryType ?? 'status'}
              onChange={(v) => update({ queryType: v })}
              data-testid={testIds.queryEditor.queryType}
            />
          </InlineField>
        )}
        <InlineFieldRow>
          <InlineField
            label="Agents"
            labelWidth={14}
            tooltip="Empty: every agent. Accepts dashboard variables such as $agent; a multi-value variable stands for each agent it holds."
            invalid={unknownAgents.length > 0}
            error={
              unknownAgents.length ? `agents: ${unknownAgents.join(', ')} not configured in this datasource` : undefined
            }
          >
            <MultiCombobox
              width="auto"
              minWidth={30}
              maxWidth={80}
              options={agentOptions}
              value={selectedAgents}
              placeholder={loading ? 'loading agents…' : 'all agents'}
              createCustomValue
              customValueDescription="agent name or $variable"
              onChange={(opts) => update({ agents: opts.map((o) => o.value) })}
              data-testid={testIds.queryEditor.agents}
            />
          </InlineField>
          <InlineField
            label="Cluster"
            labelWidth={10}
            tooltip="Only agents of this cluster. Accepts a dashboard variable."
          >
            <Combobox
              width="auto"
              minWidth={16}
              options={clusterOptions}
              value={query.cluster ?? null}
              placeholder="any"
              isClearable
              createCustomValue
              onChange={(o) => update({ cluster: o?.value || undefined })}
              data-testid={testIds.queryEditor.cluster}
            />
          </InlineField>
          <InlineField
            label="States"
            labelWidth={10}
            tooltip="Only agents and processes in these states. Empty: every state."
          >
            <MultiCombobox
              width="auto"
              minWidth={20}
              options={[...STATE_OPTIONS, ...variableOptions]}
              value={query.states ?? []}
              placeholder="all states"
              onChange={(opts) => update({ states: opts.map((o) => o.value) })}
              data-testid={testIds.queryEditor.states}
            />
          </InlineField>
        </InlineFieldRow>
        {query.queryType === 'metrics' && (
          <InlineFieldRow>
            <InlineField label="Metrics" labelWidth={14} tooltip="Which series to return. Empty: every series.">
              <MultiCombobox
                width="auto"
                minWidth={30}
                options={METRIC_OPTIONS}
                value={query.metrics ?? []}
                placeholder="all metrics"
                onChange={(opts) => update({ metrics: opts.map((o) => o.value) })}
                data-testid={testIds.queryEditor.metrics}
              />
            </InlineField>
          </InlineFieldRow>
        )}
        {error && (
          <Alert
            severity="warning"
            title="The agent list could not be loaded"
            data-testid={testIds.queryEditor.agentsProblem}
          >
            {error}. Agent names and variables can still be typed.
          </Alert>
        )}
      </Stack>
    </div>
  );
}
