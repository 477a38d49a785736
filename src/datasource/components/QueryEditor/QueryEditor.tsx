import React from 'react';
import type { QueryEditorProps } from '@grafana/data';
import { Combobox, InlineField } from '@grafana/ui';

import type { DataSource } from '../../datasource';
import { QUERY_TYPES, type QueryType, type VigilOptions, type VigilQuery } from '../../types';
import { testIds } from '../testIds';

type Props = QueryEditorProps<DataSource, VigilQuery, VigilOptions>;

const DESCRIPTIONS: Record<QueryType, string> = {
  status: 'Current state of every agent and CDP process, as a table',
};

export function QueryEditor({ query, onChange, onRunQuery }: Props) {
  const options = QUERY_TYPES.map((t) => ({ label: t, value: t, description: DESCRIPTIONS[t] }));
  return (
    <div data-testid={testIds.queryEditor.root}>
      <InlineField label="Query type" labelWidth={14}>
        <Combobox
          width={30}
          options={options}
          value={query.queryType ?? 'status'}
          onChange={(v) => {
            onChange({ ...query, queryType: v.value as QueryType });
            onRunQuery();
          }}
        />
      </InlineField>
    </div>
  );
}
