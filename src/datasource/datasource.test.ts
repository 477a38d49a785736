import {
  CoreApp,
  FieldType,
  createDataFrame,
  type DataQueryRequest,
  type DataSourceInstanceSettings,
} from '@grafana/data';
import { lastValueFrom } from 'rxjs';

import { eventsToAnnotations } from './annotations';
import { DataSource } from './datasource';
import type { VigilOptions, VigilVariableQuery } from './types';
import { normalizeVariableQuery, VigilVariableSupport } from './variables';

// A template service with one multi-value variable ($agent: two agents), a single-value one
// ($cluster) and a multi-value state variable ($bad), replacing as Grafana's does for csv.
const variables: Record<string, string[]> = {
  agent: ['demo-node-a', 'demo-node-b'],
  cluster: ['demo-ha'],
  bad: ['FAILED', 'GRACE'],
};
jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getTemplateSrv: () => ({
    getVariables: () => Object.keys(variables).map((name) => ({ name })),
    replace: (target: string, scopedVars: Record<string, { value: string | string[] }> = {}, format?: string) =>
      target.replace(/\$(\w+)/g, (whole, name: string) => {
        const value = scopedVars[name]?.value ?? variables[name];
        if (value === undefined) {
          return whole;
        }
        const list = Array.isArray(value) ? value : [value];
        return format === 'csv' ? list.join(',') : `{${list.join(',')}}`;
      }),
  }),
}));

const agentsAnswer = {
  agents: [
    { name: 'demo-standalone', url: 'http://127.0.0.1:7071', cluster: '' },
    { name: 'demo-node-a', url: 'http://127.0.0.1:7072', cluster: 'demo-ha' },
    { name: 'demo-node-b', url: 'http://127.0.0.1:7073', cluster: 'demo-ha' },
    { name: 'dr-1', url: 'http://10.0.9.1:7070', cluster: 'dr' },
  ],
};

function datasource(answer: unknown = agentsAnswer) {
  const ds = new DataSource({
    uid: 'vigil-cdp',
    type: 'vigil-cdp-datasource',
    name: 'Vigil CDP',
    jsonData: {},
    meta: {},
  } as unknown as DataSourceInstanceSettings<VigilOptions>);
  const getResource = jest.spyOn(ds, 'getResource').mockResolvedValue(answer);
  return { ds, getResource };
}

describe('applyTemplateVariables', () => {
  it('expands a multi-value agent variable into several agents, keeping literal names', () => {
    const { ds } = datasource();
    const q = ds.applyTemplateVariables({ refId: 'A', queryType: 'status', agents: ['$agent', 'demo-standalone'] }, {});
    expect(q.agents).toEqual(['demo-node-a', 'demo-node-b', 'demo-standalone']);
  });

  it('drops duplicates and uses the panel scope (repeated panels) before the dashboard value', () => {
    const { ds } = datasource();
    const q = ds.applyTemplateVariables(
      { refId: 'A', queryType: 'metrics', agents: ['$agent', 'demo-node-b'] },
      { agent: { text: 'demo-node-b', value: 'demo-node-b' } }
    );
    expect(q.agents).toEqual(['demo-node-b']);
  });

  it('expands cluster and states, and leaves out filters that end up empty', () => {
    const { ds } = datasource();
    expect(
      ds.applyTemplateVariables(
        { refId: 'A', queryType: 'events', agents: [], cluster: '$cluster', states: ['$bad'] },
        {}
      )
    ).toEqual({ refId: 'A', queryType: 'events', agents: [], cluster: 'demo-ha', states: ['FAILED', 'GRACE'] });
    expect(ds.applyTemplateVariables({ refId: 'A', queryType: 'events', cluster: '', states: [] }, {})).toEqual({
      refId: 'A',
      queryType: 'events',
      agents: [],
    });
  });
});

describe('variable support', () => {
  const run = async (ds: DataSource, query: unknown) => {
    const support = ds.variables as VigilVariableSupport;
    const response = await lastValueFrom(
      support.query({ targets: [query], scopedVars: {} } as unknown as DataQueryRequest<VigilVariableQuery>)
    );
    return response.data.map((v: { text: string }) => v.text);
  };

  it('lists agents from the GET agents resource', async () => {
    const { ds, getResource } = datasource();
    expect(await run(ds, { refId: 'V', kind: 'agents' })).toEqual([
      'demo-standalone',
      'demo-node-a',
      'demo-node-b',
      'dr-1',
    ]);
    expect(getResource).toHaveBeenCalledWith('agents');
  });

  it('lists the agents of one cluster, given by a variable', async () => {
    const { ds } = datasource();
    expect(await run(ds, { refId: 'V', kind: 'agents', cluster: '$cluster' })).toEqual(['demo-node-a', 'demo-node-b']);
  });

  it('lists the clusters once each, sorted', async () => {
    const { ds } = datasource();
    expect(await run(ds, { refId: 'V', kind: 'clusters' })).toEqual(['demo-ha', 'dr']);
  });

  it('fails with a reason when the backend answers in another shape', async () => {
    const { ds } = datasource({ agents: [{ url: 'http://x:1' }] });
    await expect(run(ds, { refId: 'V', kind: 'agents' })).rejects.toThrow(
      /answered GET agents in an unexpected shape \(agents\[0\]\.name: /
    );
  });

  it('answers text queries through metricFindQuery', async () => {
    const { ds } = datasource();
    expect(await ds.metricFindQuery('clusters')).toEqual([
      { text: 'demo-ha', value: 'demo-ha' },
      { text: 'dr', value: 'dr' },
    ]);
    expect((await ds.metricFindQuery('agents(dr)')).map((v) => v.text)).toEqual(['dr-1']);
  });

  it.each([
    ['agents', { kind: 'agents', cluster: undefined }],
    [' agents ( demo-ha ) ', { kind: 'agents', cluster: 'demo-ha' }],
    [
      { refId: 'X', kind: 'clusters' },
      { kind: 'clusters', cluster: undefined },
    ],
    [
      { refId: 'X', kind: 'planets' },
      { kind: 'agents', cluster: undefined },
    ],
    ['something else', { kind: 'agents', cluster: undefined }],
  ])('reads the stored variable query %p', (raw, expected) => {
    expect(normalizeVariableQuery(raw)).toMatchObject(expected);
  });
});

describe('annotations', () => {
  it('asks the events query, whatever type the stored target had', () => {
    const { ds } = datasource();
    const q = ds.annotations!.prepareQuery!({
      name: 'CDP events',
      enable: true,
      iconColor: 'red',
      target: { refId: 'A', queryType: 'status', agents: ['$agent'] },
    } as never);
    expect(q).toEqual({ refId: 'A', queryType: 'events', agents: ['$agent'] });
  });

  it('turns event rows into annotations with agent, change and reason', () => {
    const frame = createDataFrame({
      name: 'events',
      fields: [
        { name: 'time', type: FieldType.time, values: [1000, 2000] },
        { name: 'agent', type: FieldType.string, values: ['demo-node-a', 'demo-node-b'] },
        { name: 'process', type: FieldType.string, values: ['replicator', 'replicator'] },
        { name: 'kind', type: FieldType.string, values: ['state', 'action'] },
        { name: 'from', type: FieldType.string, values: ['OK', ''] },
        { name: 'to', type: FieldType.string, values: ['FAILED', ''] },
        { name: 'action', type: FieldType.string, values: ['', 'restart'] },
        { name: 'by', type: FieldType.string, values: ['', 'alice'] },
        { name: 'result', type: FieldType.string, values: ['', 'ok'] },
        { name: 'reason', type: FieldType.string, values: ['silent beyond its budget of 182 s', 'manual restart'] },
      ],
    });
    expect(eventsToAnnotations([frame])).toEqual([
      {
        time: 1000,
        title: 'demo-node-a / replicator: OK → FAILED',
        text: 'silent beyond its budget of 182 s',
        tags: ['demo-node-a', 'state', 'FAILED'],
      },
      {
        time: 2000,
        title: 'demo-node-b / replicator: restart ok (by alice)',
        text: 'manual restart',
        tags: ['demo-node-b', 'action'],
      },
    ]);
  });

  it('skips frames without a time field', () => {
    expect(eventsToAnnotations([createDataFrame({ fields: [{ name: 'agent', values: ['x'] }] })])).toEqual([]);
  });
});

describe('getDefaultQuery', () => {
  it("is the agents' state for Grafana's alert rule editor, the status table elsewhere", () => {
    const { ds } = datasource();
    expect(ds.getDefaultQuery(CoreApp.UnifiedAlerting)).toEqual({
      queryType: 'metrics',
      metrics: ['stateCode'],
      agents: [],
    });
    expect(ds.getDefaultQuery(CoreApp.CloudAlerting)).toEqual({
      queryType: 'metrics',
      metrics: ['stateCode'],
      agents: [],
    });
    expect(ds.getDefaultQuery(CoreApp.PanelEditor)).toEqual({ queryType: 'status', agents: [] });
  });
});
