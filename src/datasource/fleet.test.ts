import { readFileSync } from 'node:fs';
import path from 'node:path';

import { ALLOWANCE_LABELS, describeBudget, type Allowance } from '../shared/budget';
import { formatClock, formatSeconds } from '../shared/duration';
import { agentBudget, budgetSeconds } from './fleet';
import type { VigilOptions } from './types';

// The budget's cases, shared with the engine's tests (pkg/outage), which compute the budget in force.
const table: {
  cases: Array<{
    name: string;
    jsonData: VigilOptions;
    agent?: number;
    budget: null | {
      totalSeconds: number;
      allowances: Array<{ key: Allowance; kind: string; seconds: number }>;
      text: string;
    };
  }>;
} = JSON.parse(readFileSync(path.resolve(__dirname, '../../pkg/outage/testdata/budget.json'), 'utf8'));

describe("the budget as you type: the engine's", () => {
  it.each(table.cases)('$name', ({ jsonData, agent: index, budget: want }) => {
    const agent = jsonData.agents![index ?? 0];
    const got = agentBudget(jsonData, agent);
    if (want === null) {
      expect(got).toBeUndefined();
      return;
    }
    const seconds = budgetSeconds(jsonData, agent)!;
    expect(got?.totalSeconds).toBe(want.totalSeconds);
    expect(got?.applicable.map((key) => ({ key, kind: ALLOWANCE_LABELS[key], seconds: seconds[key] }))).toEqual(
      want.allowances
    );
    expect(describeBudget(seconds, Boolean(agent.cluster?.trim()), formatSeconds, formatClock)).toBe(want.text);
  });
});
