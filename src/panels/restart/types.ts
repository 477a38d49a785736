export const DETAIL_COLUMNS = [
  { value: 'cluster', label: 'Cluster' },
  { value: 'reason', label: 'Reason' },
  { value: 'lastRestart', label: 'Last restart' },
  { value: 'lag', label: 'Protection lag' },
  { value: 'rtt', label: 'RTT' },
  { value: 'budget', label: 'Budget' },
] as const;

export type DetailColumn = (typeof DETAIL_COLUMNS)[number]['value'];

export const DEFAULT_COLUMNS: DetailColumn[] = ['cluster', 'reason', 'lastRestart', 'lag'];

export interface RestartPanelOptions {
  layout: 'compact' | 'full';
  columns?: DetailColumn[];
  reasonRequired?: boolean;
}
