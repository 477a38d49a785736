// The state codes of a monitored client. They are fixed: alert rules, value mappings and the
// backend rely on them (see docs/engine.md).
export const CLIENT_STATES = [
  { code: 0, name: 'OK', color: 'green', meaning: 'answered; every CDP process that should run is running' },
  { code: 1, name: 'STANDBY', color: 'blue', meaning: 'passive cluster node; CDP is not expected to run here' },
  { code: 2, name: 'RESTARTING', color: 'yellow', meaning: 'a CDP process was down; a restart was issued' },
  { code: 3, name: 'GRACE', color: 'orange', meaning: 'silent, but within its failover-aware budget' },
  { code: 4, name: 'DEGRADED', color: 'purple', meaning: 'CDP runs but lags its RPO, or restarts flap' },
  { code: 5, name: 'FAILED', color: 'red', meaning: 'silent beyond its budget, or CDP cannot be restarted' },
  { code: 6, name: 'UNKNOWN', color: 'text', meaning: 'never answered yet, or the answer was not understood' },
] as const;

export type ClientStateName = (typeof CLIENT_STATES)[number]['name'];

export function stateByName(name: string) {
  return CLIENT_STATES.find((s) => s.name === name) ?? CLIENT_STATES[6];
}

export function stateByCode(code: number) {
  return CLIENT_STATES.find((s) => s.code === code) ?? CLIENT_STATES[6];
}
