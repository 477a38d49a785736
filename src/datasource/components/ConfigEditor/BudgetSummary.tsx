import React from 'react';
import { Alert, Stack, Text } from '@grafana/ui';

import { describeBudget } from '../../../shared/budget';
import { formatClock, formatSeconds } from '../../../shared/duration';
import { budgetSeconds, hasOverrides } from '../../fleet';
import type { VigilOptions } from '../../types';
import { testIds } from '../testIds';

// The worst-case budget the settings give, recomputed as a person types: how long a silent agent
// stays in GRACE before it is FAILED.
export function BudgetSummary({ options }: { options: VigilOptions }) {
  const fleet = budgetSeconds(options);
  const agents = options.agents ?? [];
  const clustered = agents.filter((a) => a.cluster?.trim()).length;
  const overridden = agents.filter(hasOverrides);
  const measured = (options.defaults?.budget?.mode ?? 'configured') === 'measured';
  return (
    <Alert severity="info" title="Worst-case budget: how long an agent may stay silent before it is FAILED">
      {fleet ? (
        <Stack direction="column" gap={0.5}>
          <Text data-testid={testIds.configEditor.budgetClustered}>
            Agents in a cluster ({clustered}): {describeBudget(fleet, true, formatSeconds, formatClock)}
          </Text>
          <Text data-testid={testIds.configEditor.budgetStandalone}>
            Standalone agents ({agents.length - clustered}): {describeBudget(fleet, false, formatSeconds, formatClock)}
          </Text>
          {overridden.map((a) => {
            const own = budgetSeconds(options, a);
            return (
              <Text key={a.name} color="secondary">
                {a.name || 'unnamed agent'} (own settings):{' '}
                {own
                  ? describeBudget(own, Boolean(a.cluster?.trim()), formatSeconds, formatClock)
                  : 'fix its budget to see it'}
              </Text>
            );
          })}
          {measured && (
            <Text color="secondary" italic>
              In measured mode each allowance is learned from past silences once enough are known; until then these
              configured values hold.
            </Text>
          )}
        </Stack>
      ) : (
        <Text>Fix the budget factors flagged below to see the budget.</Text>
      )}
    </Alert>
  );
}
