import type { SETTING_CHOICES } from './contract.gen';

// The timeout budget of an agent, as the engine computes it (docs/engine.md): how long it may stay
// silent before it is FAILED.
//   budget = responseTime + processing + combine(applicable allowances)
// Failover applies only to agents in a cluster; combine is max (the allowances are alternative
// explanations for one silence) or sum (conservative).

export const ALLOWANCES = ['failover', 'restart', 'networkInterruption', 'appErrorRecovery'] as const;
export type Allowance = (typeof ALLOWANCES)[number];

export type Combine = (typeof SETTING_CHOICES.combine)[number];

export interface BudgetSeconds {
  responseTime: number;
  processing: number;
  failover: number;
  restart: number;
  networkInterruption: number;
  appErrorRecovery: number;
  combine: Combine;
}

export interface BudgetBreakdown {
  totalSeconds: number;
  /** The allowances that count for this agent, in the order of ALLOWANCES. */
  applicable: Allowance[];
  /** The allowance that decides the total under max (undefined under sum or with none). */
  deciding?: Allowance;
  allowanceSeconds: number;
}

export function worstCaseBudget(budget: BudgetSeconds, clustered: boolean): BudgetBreakdown {
  const applicable = ALLOWANCES.filter((a) => a !== 'failover' || clustered);
  const values = applicable.map((a) => budget[a]);
  let allowanceSeconds = 0;
  let deciding: Allowance | undefined;
  if (budget.combine === 'sum') {
    allowanceSeconds = values.reduce((sum, v) => sum + v, 0);
  } else {
    values.forEach((v, i) => {
      if (deciding === undefined || v > allowanceSeconds) {
        allowanceSeconds = v;
        deciding = applicable[i];
      }
    });
  }
  return {
    totalSeconds: budget.responseTime + budget.processing + allowanceSeconds,
    applicable,
    deciding,
    allowanceSeconds,
  };
}

export const ALLOWANCE_LABELS: Record<Allowance, string> = {
  failover: 'failover',
  restart: 'restart',
  networkInterruption: 'network interruption',
  appErrorRecovery: 'app error recovery',
};

/**
 * The sum written out, e.g. "1 s response + 1 s processing + max(failover 60 s, restart 180 s, …) = 182 s
 * (3 min 2 s)", so a person
 * sees which allowance decides the budget.
 */
export function describeBudget(
  budget: BudgetSeconds,
  clustered: boolean,
  format: (s: number) => string,
  clock: (s: number) => string
): string {
  const b = worstCaseBudget(budget, clustered);
  const parts = b.applicable.map((a) => `${ALLOWANCE_LABELS[a]} ${format(budget[a])}`).join(', ');
  const allowances = b.applicable.length ? ` + ${budget.combine}(${parts})` : '';
  return `${format(budget.responseTime)} response + ${format(budget.processing)} processing${allowances} = ${Math.round(b.totalSeconds * 1000) / 1000} s${
    b.totalSeconds >= 60 ? ` (${clock(b.totalSeconds)})` : ''
  }`;
}
