import { worstCaseBudget, type BudgetSeconds } from './budget';

const defaults: BudgetSeconds = {
  responseTime: 1,
  processing: 1,
  failover: 60,
  restart: 180,
  networkInterruption: 30,
  appErrorRecovery: 60,
  combine: 'max',
};

describe('worstCaseBudget', () => {
  it('takes the largest allowance under max', () => {
    expect(worstCaseBudget(defaults, true)).toEqual({
      totalSeconds: 182,
      applicable: ['failover', 'restart', 'networkInterruption', 'appErrorRecovery'],
      deciding: 'restart',
      allowanceSeconds: 180,
    });
  });
  it('counts failover only for cluster members', () => {
    const budget = { ...defaults, failover: 300 };
    expect(worstCaseBudget(budget, true).totalSeconds).toBe(302);
    expect(worstCaseBudget(budget, true).deciding).toBe('failover');
    expect(worstCaseBudget(budget, false).totalSeconds).toBe(182);
    expect(worstCaseBudget(budget, false).applicable).not.toContain('failover');
  });
  it('adds the allowances up under sum', () => {
    expect(worstCaseBudget({ ...defaults, combine: 'sum' }, true).totalSeconds).toBe(332);
    expect(worstCaseBudget({ ...defaults, combine: 'sum' }, false).totalSeconds).toBe(272);
  });
});
