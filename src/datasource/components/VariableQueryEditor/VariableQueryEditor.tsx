import React, { useMemo } from 'react';
import type { QueryEditorProps } from '@grafana/data';
import { Alert, Combobox, InlineField, RadioButtonGroup, Stack } from '@grafana/ui';

import { useAgents } from '../../data/useAgents';
import type { DataSource } from '../../datasource';
import { variableNames } from '../../templating';
import type { VigilOptions, VigilQuery, VigilVariableQuery } from '../../types';
import { normalizeVariableQuery } from '../../variables';
import { testIds } from '../testIds';

type Props = QueryEditorProps<DataSource, VigilQuery, VigilOptions, VigilVariableQuery>;

const KIND_OPTIONS = [
  { label: 'Agents', value: 'agents' as const, description: 'The names of the configured agents' },
  { label: 'Clusters', value: 'clusters' as const, description: 'The clusters the agents belong to' },
];

export function VariableQueryEditor({ datasource, query: raw, onChange }: Props) {
  const query = normalizeVariableQuery(raw);
  const { clusters, error } = useAgents(datasource);
  const variables = useMemo(() => variableNames(), []);
  const clusterOptions = [
    ...clusters.map((c) => ({ label: c, value: c })),
    ...variables.map((v) => ({ label: v, value: v, description: 'dashboard variable' })),
  ];
  return (
    <div data-testid={testIds.variableEditor.root}>
      <Stack direction="column" gap={0}>
        <InlineField label="Values" labelWidth={14}>
          <RadioButtonGroup
            options={KIND_OPTIONS}
            value={query.kind}
            onChange={(kind) => onChange({ ...query, kind })}
            data-testid={testIds.variableEditor.kind}
          />
        </InlineField>
        <InlineField
          label="Cluster"
          labelWidth={14}
          tooltip="Only agents (or the cluster) of this cluster. Accepts a dashboard variable."
        >
          <Combobox
            width={30}
            options={clusterOptions}
            value={query.cluster ?? null}
            placeholder="any"
            isClearable
            createCustomValue
            onChange={(o) => onChange({ ...query, cluster: o?.value || undefined })}
            data-testid={testIds.variableEditor.cluster}
          />
        </InlineField>
        {error && (
          <Alert severity="warning" title="The agent list could not be loaded">
            {error}
          </Alert>
        )}
      </Stack>
    </div>
  );
}
