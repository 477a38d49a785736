// Test-only page script: stands in for the Grafana frontend around Vigil's built plugins. It
// provides Grafana's shared libraries to the plugins' AMD modules, wires @grafana/runtime's
// services to the test host, and mounts one plugin component chosen by query parameters:
//   ?view=app[&path=/a/vigil-cdp-app/...]  the app's root page, at that path
//   ?view=panel&plugin=ID&ds=UID      a panel fed by a query of that datasource
//   ?view=config&ds=UID               the datasource's ConfigEditor
//   ?view=query&ds=UID                the datasource's QueryEditor
// plus &role=Viewer|Editor|Admin, which the host also receives with every request.
import * as emotionCss from '@emotion/css';
import * as emotionReact from '@emotion/react';
import * as grafanaData from '@grafana/data';
import * as grafanaRuntime from '@grafana/runtime';
import * as grafanaUi from '@grafana/ui';
import lodash from 'lodash';
import React, { useState } from 'react';
import * as ReactDOM from 'react-dom';
import { createRoot } from 'react-dom/client';
import { Router } from 'react-router-dom';
import { CompatRouter } from 'react-router-dom-v5-compat';
import * as jsxRuntime from 'react/jsx-runtime';
import * as rxjs from 'rxjs';

import { setPanelRenderer } from 'grafana-runtime-panel-renderer';

import { installDefine, loadAmdModule } from './amd';
import { createBackendSrv } from './backend';

const { CoreApp, LoadingState, dateTime, getDefaultTimeRange, PluginType } = grafanaData;
type DataSourceInstanceSettings = grafanaData.DataSourceInstanceSettings;
type DataSourcePluginMeta = grafanaData.DataSourcePluginMeta;

const shared: Record<string, unknown> = {
  react: React,
  'react-dom': ReactDOM,
  'react/jsx-runtime': jsxRuntime,
  'react/jsx-dev-runtime': jsxRuntime,
  rxjs,
  lodash,
  '@emotion/css': emotionCss,
  '@emotion/react': emotionReact,
  '@grafana/data': grafanaData,
  '@grafana/ui': grafanaUi,
  '@grafana/runtime': grafanaRuntime,
};

const PLUGIN_PATHS: Record<string, string> = {
  'vigil-cdp-app': '/public/plugins/vigil-cdp-app/',
  'vigil-cdp-datasource': '/public/plugins/vigil-cdp-datasource/',
  'vigil-restart-panel': '/public/plugins/vigil-restart-panel/',
};

interface HostDatasource {
  name: string;
  uid: string;
  type: string;
  jsonData: Record<string, unknown>;
  secureJsonFields: Record<string, boolean>;
}

const params = new URLSearchParams(window.location.search);
const role = params.get('role') ?? 'Viewer';
const login = grafanaRuntime.config.bootData.user.login;
const statusEl = () => document.getElementById('status')!;

function setStatus(text: string) {
  statusEl().textContent = text;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await window.fetch(url, { headers: { 'X-Grafana-Role': role, 'X-Grafana-Login': login } });
  if (!res.ok) {
    throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`);
  }
  return res.json();
}

const modules = new Map<string, Promise<Record<string, unknown>>>();
function loadPlugin(id: string) {
  if (!modules.has(id)) {
    const base = PLUGIN_PATHS[id];
    if (!base) {
      throw new Error(`unknown plugin id ${id}`);
    }
    modules.set(id, loadAmdModule(`${base}module.js`, shared));
  }
  return modules.get(id)!.then((m) => m.plugin as any);
}

// Grafana core fills the panel options editor registry at boot. The harness renders no options
// editor, so each editor id resolves to an empty component: enough for a panel's option builder
// to compute its defaults, which is all the harness needs from it.
function registerOptionEditors() {
  const ids = [
    'text',
    'number',
    'boolean',
    'radio',
    'select',
    'multi-select',
    'color',
    'unit',
    'slider',
    'strings',
    'links',
    'field-name',
  ];
  grafanaData.standardEditorsRegistry.setInit(() =>
    ids.map((id) => ({ id, name: id, editor: () => null }) as unknown as grafanaData.StandardEditorsRegistryItem)
  );
}

// Grafana core renders built-in visualizations (state timeline, time series) through
// PanelRenderer; their code is not in the packages. The stand-in shows which panel Grafana would
// render and a summary of the frames it would get, so tests can check the data behind it.
function HarnessPanelRenderer(props: grafanaRuntime.PanelRendererProps) {
  const frames = props.data?.series ?? [];
  return (
    <div
      data-testid="harness-panel-renderer"
      data-plugin-id={props.pluginId}
      style={{ width: props.width, height: props.height }}
    >
      <grafanaUi.Text color="secondary">
        {props.title ? `${props.title}: ` : ''}Grafana draws the {props.pluginId} visualization here.
      </grafanaUi.Text>
      {frames.map((f, i) => (
        <div key={i} data-testid="harness-panel-frame">
          {f.name ?? `frame ${i}`}: {f.length} rows; fields {f.fields.map((x) => x.name).join(', ')}
        </div>
      ))}
    </div>
  );
}

async function main() {
  installDefine();
  registerOptionEditors();
  setPanelRenderer(HarnessPanelRenderer);
  grafanaRuntime.setBackendSrv(createBackendSrv(role, login));
  grafanaRuntime.setTemplateSrv({
    getVariables: () => [],
    replace: (target?: string) => target ?? '',
    containsTemplate: () => false,
    updateTimeRange: () => {},
  } as unknown as grafanaRuntime.TemplateSrv);

  const hostDatasources = await getJson<HostDatasource[]>('/api/harness/datasources');
  const dsMeta = await getJson<DataSourcePluginMeta>(`${PLUGIN_PATHS['vigil-cdp-datasource']}plugin.json`);
  const instanceSettings = hostDatasources.map((ds, i): DataSourceInstanceSettings => ({
    // Grafana still fills the numeric id; the plugins use the uid.
    // eslint-disable-next-line @typescript-eslint/no-deprecated
    id: i + 1,
    uid: ds.uid,
    type: ds.type,
    name: ds.name,
    meta: {
      ...dsMeta,
      type: PluginType.datasource,
      module: `${PLUGIN_PATHS[ds.type]}module.js`,
      baseUrl: PLUGIN_PATHS[ds.type],
    },
    jsonData: ds.jsonData,
    access: 'proxy',
    readOnly: false,
  }));
  const instances = new Map<string, Promise<unknown>>();
  const findSettings = (ref?: unknown) => {
    const uid = typeof ref === 'string' ? ref : (ref as { uid?: string } | undefined)?.uid;
    return instanceSettings.find((s) => s.uid === uid || s.name === uid) ?? (uid ? undefined : instanceSettings[0]);
  };
  grafanaRuntime.setDataSourceSrv({
    getInstanceSettings: findSettings,
    getList: () => instanceSettings,
    reload: () => Promise.resolve(),
    registerRuntimeDataSource: () => {},
    get: (ref?: unknown) => {
      const settings = findSettings(ref);
      if (!settings) {
        return Promise.reject(new Error(`datasource ${JSON.stringify(ref)} not found`));
      }
      if (!instances.has(settings.uid)) {
        instances.set(
          settings.uid,
          loadPlugin(settings.type).then((plugin) => new plugin.DataSourceClass(settings))
        );
      }
      return instances.get(settings.uid)!;
    },
  } as unknown as grafanaRuntime.DataSourceSrv);

  const view = params.get('view') ?? 'app';
  const root = createRoot(document.getElementById('root')!);
  const theme = grafanaRuntime.config.theme2;
  const render = (node: React.ReactNode) =>
    root.render(
      // Grafana renders plugins inside its router (react-router 5 with the v6 compatibility layer);
      // @grafana/ui links need it.
      <Router history={grafanaRuntime.locationService.getHistory()}>
        <CompatRouter>
          <grafanaUi.ThemeContext.Provider value={theme}>
            <grafanaUi.GlobalStyles />
            <div style={{ padding: 16, background: theme.colors.background.primary, minHeight: '100vh' }}>{node}</div>
          </grafanaUi.ThemeContext.Provider>
        </CompatRouter>
      </Router>
    );

  if (view === 'app') {
    // &path=/a/vigil-cdp-app/... opens that page of the app, as a Grafana URL would.
    const path = params.get('path');
    if (path) {
      grafanaRuntime.locationService.push(path);
    }
    const plugin = await loadPlugin('vigil-cdp-app');
    const Root = plugin.root;
    render(
      <Root
        meta={plugin.meta ?? { id: 'vigil-cdp-app' }}
        basename="/a/vigil-cdp-app"
        query={{}}
        path="/a/vigil-cdp-app"
      />
    );
  } else if (view === 'panel') {
    await renderPanel(params.get('plugin') ?? 'vigil-restart-panel', render);
  } else if (view === 'config' || view === 'query') {
    const settings = findSettings(params.get('ds') ?? undefined);
    if (!settings) {
      throw new Error(`no datasource ${params.get('ds')}`);
    }
    const plugin = await loadPlugin(settings.type);
    if (view === 'config') {
      const host = hostDatasources.find((d) => d.uid === settings.uid)!;
      render(
        <ConfigPage
          Editor={plugin.components.ConfigEditor}
          settings={settings}
          secureJsonFields={host.secureJsonFields}
        />
      );
    } else {
      const ds = await grafanaRuntime.getDataSourceSrv().get(settings.uid);
      render(<QueryPage Editor={plugin.components.QueryEditor} datasource={ds} />);
    }
  } else {
    throw new Error(`unknown view ${view}`);
  }
  setStatus('ready');
}

function ConfigPage({
  Editor,
  settings,
  secureJsonFields,
}: {
  Editor: React.ComponentType<any>;
  settings: DataSourceInstanceSettings;
  secureJsonFields: Record<string, boolean>;
}) {
  const [options, setOptions] = useState({
    ...settings,
    orgId: 1,
    typeName: settings.meta.name,
    access: 'proxy',
    url: '',
    jsonData: settings.jsonData,
    secureJsonFields,
    secureJsonData: {},
  });
  return (
    <>
      <Editor options={options} onOptionsChange={setOptions} />
      <pre data-testid="harness-options" style={{ display: 'none' }}>
        {JSON.stringify({ jsonData: options.jsonData, secureJsonData: options.secureJsonData })}
      </pre>
    </>
  );
}

function QueryPage({ Editor, datasource }: { Editor: React.ComponentType<any>; datasource: any }) {
  const [query, setQuery] = useState({ refId: 'A', ...datasource.getDefaultQuery?.(CoreApp.PanelEditor) });
  return (
    <>
      <Editor
        datasource={datasource}
        query={query}
        onChange={setQuery}
        onRunQuery={() => {}}
        app={CoreApp.PanelEditor}
      />
      <pre data-testid="harness-query">{JSON.stringify(query)}</pre>
    </>
  );
}

async function renderPanel(pluginId: string, render: (node: React.ReactNode) => void) {
  const plugin = await loadPlugin(pluginId);
  const ds: any = await grafanaRuntime.getDataSourceSrv().get(params.get('ds') ?? undefined);
  const timeRange = getDefaultTimeRange();
  const queryType = params.get('queryType') ?? 'status';
  const request = {
    requestId: 'harness',
    app: CoreApp.Dashboard,
    interval: '10s',
    intervalMs: 10000,
    maxDataPoints: 500,
    range: timeRange,
    scopedVars: {},
    targets: [{ refId: 'A', datasource: { uid: ds.uid, type: ds.type }, queryType }],
    timezone: 'utc',
    startTime: dateTime().valueOf(),
  };
  const response: any = await rxjs.lastValueFrom(ds.query(request));
  if (response.errors?.length) {
    setStatus(`query error: ${response.errors.map((e: { message?: string }) => e.message).join('; ')}`);
  }
  const Panel = plugin.panel;
  const options = { ...plugin.defaults, ...JSON.parse(params.get('options') ?? '{}') };
  render(
    <Panel
      id={1}
      data={{ series: response.data, state: LoadingState.Done, timeRange }}
      timeRange={timeRange}
      timeZone="utc"
      options={options}
      fieldConfig={{ defaults: {}, overrides: [] }}
      transparent={false}
      width={900}
      height={500}
      title="Vigil restart"
      renderCounter={0}
      eventBus={new grafanaData.EventBusSrv()}
      onOptionsChange={() => {}}
      onFieldConfigChange={() => {}}
      onChangeTimeRange={() => {}}
      replaceVariables={(s: string) => s}
    />
  );
}

main().catch((err) => {
  console.error(err);
  setStatus(`error: ${err instanceof Error ? err.message : String(err)}`);
});
