import { STATES } from './contract.gen';

// The state codes of a monitored client, generated from pkg/state: alert rules, value mappings and
// the backend rely on them (see docs/engine.md).
export const CLIENT_STATES = STATES;

export type ClientStateName = (typeof CLIENT_STATES)[number]['name'];

const UNKNOWN = CLIENT_STATES.find((s) => s.name === 'UNKNOWN')!;

export function stateByName(name: string) {
  return CLIENT_STATES.find((s) => s.name === name) ?? UNKNOWN;
}

export function stateByCode(code: number) {
  return CLIENT_STATES.find((s) => s.code === code) ?? UNKNOWN;
}

/** The worse of two state codes by pkg/state's one severity order (FAILED is worse than UNKNOWN). */
export function worseCode(a: number, b: number): number {
  return stateByCode(b).severity > stateByCode(a).severity ? b : a;
}
