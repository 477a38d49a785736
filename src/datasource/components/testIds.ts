export const testIds = {
  configEditor: {
    root: 'vigil-config-editor',
    pollInterval: 'vigil-config-poll-interval',
    addAgent: 'vigil-config-add-agent',
    readToken: 'vigil-config-read-token',
    controlToken: 'vigil-config-control-token',
    agentName: (i: number) => `vigil-config-agent-${i}-name`,
    agentUrl: (i: number) => `vigil-config-agent-${i}-url`,
  },
  queryEditor: {
    root: 'vigil-query-editor',
  },
};
