export interface RestartPanelOptions {
  layout: 'compact' | 'full';
}
