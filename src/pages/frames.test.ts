import { FieldType, createDataFrame } from '@grafana/data';

import { eventRows } from './frames';

// The backend's events table (pkg/frames/events.go): time, agent, process, kind, ..., by, ..., text.
function eventsFrame(
  rows: Array<{ time: number; agent: string; process: string; kind: string; by: string; text: string }>
) {
  const col = (name: keyof (typeof rows)[number]) => rows.map((r) => r[name]);
  return createDataFrame({
    name: 'events',
    fields: [
      { name: 'time', type: FieldType.time, values: col('time') },
      { name: 'agent', type: FieldType.string, values: col('agent') },
      { name: 'process', type: FieldType.string, values: col('process') },
      { name: 'kind', type: FieldType.string, values: col('kind') },
      { name: 'by', type: FieldType.string, values: col('by') },
      { name: 'text', type: FieldType.string, values: col('text') },
    ],
  });
}

describe('eventRows', () => {
  it('reads who acted from the events table, newest first', () => {
    const rows = eventRows([
      eventsFrame([
        {
          time: 1000,
          agent: 'db-1',
          process: 'cdp',
          kind: 'action',
          by: 'alice',
          text: 'db-1/cdp: restart ok (by alice)',
        },
        {
          time: 2000,
          agent: 'db-1',
          process: 'cdp',
          kind: 'action',
          by: 'auto',
          text: 'db-1/cdp: restart ok (by auto)',
        },
        { time: 1500, agent: 'db-1', process: '', kind: 'state', by: '', text: 'db-1: OK → GRACE' },
      ]),
    ]);
    expect(rows.map((r) => [r.time, r.user, r.text])).toEqual([
      [2000, 'auto', 'db-1/cdp: restart ok (by auto)'],
      [1500, '', 'db-1: OK → GRACE'],
      [1000, 'alice', 'db-1/cdp: restart ok (by alice)'],
    ]);
  });

  it('keeps only the newest rows up to the limit', () => {
    const many = Array.from({ length: 5 }, (_, i) => ({
      time: i,
      agent: 'a',
      process: '',
      kind: 'state',
      by: '',
      text: `t${i}`,
    }));
    expect(eventRows([eventsFrame(many)], 2).map((r) => r.text)).toEqual(['t4', 't3']);
  });
});
