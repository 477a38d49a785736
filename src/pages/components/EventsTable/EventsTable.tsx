import React from 'react';
import { dateTimeFormat } from '@grafana/data';
import { InteractiveTable, Text } from '@grafana/ui';

import type { EventRow } from '../../frames';

type Cell = { row: { original: EventRow } };

const columns = [
  {
    id: 'time',
    header: 'Time',
    cell: ({ row }: Cell) => (row.original.time !== undefined ? dateTimeFormat(row.original.time) : ''),
  },
  { id: 'agent', header: 'Agent' },
  { id: 'process', header: 'Process' },
  { id: 'kind', header: 'Event' },
  { id: 'text', header: 'What happened' },
  { id: 'user', header: 'By' },
];

export function EventsTable({ events, testId }: { events: EventRow[]; testId?: string }) {
  if (events.length === 0) {
    return (
      <div data-testid={testId}>
        <Text color="secondary">No events in this time range.</Text>
      </div>
    );
  }
  return (
    <div data-testid={testId}>
      <InteractiveTable columns={columns} data={events} getRowId={(r: EventRow) => r.id} pageSize={10} />
    </div>
  );
}
