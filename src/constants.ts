import pluginJson from '../plugin.json';

export const PLUGIN_ID = pluginJson.id;
export const PLUGIN_BASE_URL = `/a/${PLUGIN_ID}`;

export enum ROUTES {
  Fleet = 'fleet',
  Agent = 'agent',
  Configuration = 'configuration',
}

export function prefixRoute(route: string): string {
  return `${PLUGIN_BASE_URL}/${route}`;
}

export function agentUrl(agent: string, datasourceUid?: string): string {
  const query = datasourceUid ? `?ds=${encodeURIComponent(datasourceUid)}` : '';
  return `${prefixRoute(ROUTES.Agent)}/${encodeURIComponent(agent)}${query}`;
}

/** The dashboards the app includes (src/dashboards) and provisions. */
export const DASHBOARDS = {
  fleet: { uid: 'vigil-cdp-fleet-overview', title: 'CDP fleet overview' },
  agent: { uid: 'vigil-cdp-agent-detail', title: 'CDP agent detail' },
};
