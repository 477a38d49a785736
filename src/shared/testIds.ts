export const testIds = {
  app: {
    root: 'vigil-app-root',
  },
  restart: {
    button: (agent: string, process: string) => `vigil-restart-button-${agent}-${process}`,
    result: (agent: string, process: string) => `vigil-restart-result-${agent}-${process}`,
    reason: 'vigil-restart-reason',
  },
  fleet: {
    page: 'vigil-fleet-page',
    counts: 'vigil-fleet-counts',
    count: (state: string) => `vigil-fleet-count-${state}`,
    table: 'vigil-fleet-table',
    agentLink: (agent: string) => `vigil-fleet-agent-${agent}`,
    events: 'vigil-fleet-events',
  },
  agent: {
    page: 'vigil-agent-page',
    budget: 'vigil-agent-budget',
    diagnosis: 'vigil-agent-diagnosis',
    processes: 'vigil-agent-processes',
    events: 'vigil-agent-events',
  },
  config: {
    page: 'vigil-config-page',
    datasource: 'vigil-config-datasource',
    folder: 'vigil-config-folder',
    preview: 'vigil-config-preview',
    install: 'vigil-config-install',
    status: 'vigil-config-status',
    monitor: 'vigil-config-monitor',
  },
};
