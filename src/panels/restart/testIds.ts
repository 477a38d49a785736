export const testIds = {
  panel: {
    root: 'vigil-restart-panel',
    empty: 'vigil-restart-panel-empty',
    row: (agent: string, process: string) => `vigil-restart-row-${agent}-${process}`,
  },
};
