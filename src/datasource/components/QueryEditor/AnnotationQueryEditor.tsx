import React from 'react';
import type { AnnotationQuery, QueryEditorProps } from '@grafana/data';

import type { DataSource } from '../../datasource';
import type { VigilOptions, VigilQuery } from '../../types';
import { QueryEditor } from './QueryEditor';

type Props = QueryEditorProps<DataSource, VigilQuery, VigilOptions> & {
  annotation?: AnnotationQuery<VigilQuery>;
  onAnnotationChange?: (annotation: AnnotationQuery<VigilQuery>) => void;
};

/** Annotations come from the events query; only its filters are edited. */
export function AnnotationQueryEditor(props: Props) {
  return (
    <QueryEditor
      {...props}
      query={{ ...props.query, queryType: 'events' }}
      onChange={(q) => props.onChange({ ...q, queryType: 'events' })}
      fixedQueryType="events"
    />
  );
}
