import { worstCaseBudget, type BudgetBreakdown, type BudgetSeconds } from '../shared/budget';
import { DEFAULT_POLICY as GENERATED_POLICY } from '../shared/contract.gen';
import { parseDurationSeconds } from '../shared/duration';
import type { AgentSettings, BudgetSettings, PolicySettings, VigilOptions } from './types';

// What applies when nothing is configured: the engine's defaults (pkg/fleet DefaultPolicy), generated,
// so the editor shows the budget the backend will use.
export { DEFAULT_POLL_INTERVAL } from '../shared/contract.gen';
export const DEFAULT_POLICY = GENERATED_POLICY satisfies Required<{
  [K in keyof PolicySettings]-?: Required<NonNullable<PolicySettings[K]>>;
}>;

type DurationKey = Exclude<keyof BudgetSettings, 'combine' | 'mode'>;
const BUDGET_DURATIONS: DurationKey[] = [
  'responseTime',
  'processing',
  'failover',
  'restart',
  'networkInterruption',
  'appErrorRecovery',
];

/** An agent's effective value of one policy key: its override, else the fleet default, else built in. */
function pick<S extends keyof PolicySettings, K extends keyof NonNullable<PolicySettings[S]>>(
  section: S,
  key: K,
  agent: PolicySettings | undefined,
  defaults: PolicySettings | undefined
) {
  const fromAgent = (agent?.[section] as Record<K, unknown> | undefined)?.[key];
  const fromDefaults = (defaults?.[section] as Record<K, unknown> | undefined)?.[key];
  const builtIn = (DEFAULT_POLICY[section] as Record<K, unknown>)[key];
  const set = (v: unknown) => v !== undefined && v !== null && v !== '';
  return set(fromAgent) ? fromAgent : set(fromDefaults) ? fromDefaults : builtIn;
}

/**
 * The budget in seconds for an agent (or the fleet defaults when agent is undefined). A factor the
 * backend refuses (a duration that does not parse or is negative, a combine other than max or sum)
 * counts as undefined, so the total shows as unknown rather than wrong.
 */
export function budgetSeconds(options: VigilOptions, agent?: PolicySettings): BudgetSeconds | undefined {
  const combine = String(pick('budget', 'combine', agent, options.defaults)).trim();
  if (combine !== 'max' && combine !== 'sum') {
    return undefined;
  }
  const out: Partial<BudgetSeconds> = { combine };
  for (const key of BUDGET_DURATIONS) {
    const seconds = parseDurationSeconds(String(pick('budget', key, agent, options.defaults)));
    if (seconds === undefined || seconds < 0) {
      return undefined;
    }
    out[key] = seconds;
  }
  return out as BudgetSeconds;
}

export function agentBudget(options: VigilOptions, agent: AgentSettings): BudgetBreakdown | undefined {
  const seconds = budgetSeconds(options, agent);
  return seconds && worstCaseBudget(seconds, Boolean(agent.cluster?.trim()));
}

/** Whether an agent sets any policy key of its own. */
export function hasOverrides(agent: AgentSettings): boolean {
  const sections = [agent.budget, agent.measured, agent.autoRestart];
  return (
    sections.some((s) => s !== undefined && Object.values(s).some((v) => v !== undefined && v !== '')) ||
    Boolean(agent.rpo)
  );
}

/** Removes empty strings and empty sections, so jsonData holds only what a person set. */
export function compactPolicy<T extends PolicySettings>(policy: T): T {
  const out: Record<string, unknown> = { ...(policy as Record<string, unknown>) };
  for (const section of ['budget', 'measured', 'autoRestart'] as const) {
    const value = policy[section] as Record<string, unknown> | undefined;
    if (value === undefined) {
      continue;
    }
    const kept = Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined && v !== ''));
    if (Object.keys(kept).length === 0) {
      delete out[section];
    } else {
      out[section] = kept;
    }
  }
  if (policy.rpo === '' || policy.rpo === undefined) {
    delete out.rpo;
  }
  return out as T;
}
