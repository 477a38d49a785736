import React, { useCallback, useMemo, useState } from 'react';
import { css } from '@emotion/css';
import {
  dateTimeFormatTimeAgo,
  formattedValueToString,
  getValueFormat,
  type GrafanaTheme2,
  type PanelProps,
} from '@grafana/data';
import { Alert, Badge, Stack, Text, useStyles2 } from '@grafana/ui';

import { RestartAction } from '../../../../shared/RestartAction/RestartAction';
import { StateBadge } from '../../../../shared/StateBadge/StateBadge';
import { panelDatasource, restartRoleOf } from '../../../../shared/data/datasource';
import { getAgent, pollNow, type RestartAnswer } from '../../../../shared/resources';
import { currentOrgRole, restartPermission } from '../../../../shared/roles';
import { statusRows, type StatusRow } from '../../../../shared/rows';
import { DEFAULT_COLUMNS, type DetailColumn, type RestartPanelOptions } from '../../types';
import { testIds } from '../../testIds';

type Props = PanelProps<RestartPanelOptions>;

const seconds = (v: number) => formattedValueToString(getValueFormat('s')(v));

function details(row: StatusRow, columns: DetailColumn[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const c of columns) {
    if (c === 'cluster' && row.cluster) {
      out.push(['cluster', row.role ? `${row.cluster} (${row.role})` : row.cluster]);
    } else if (c === 'lastRestart' && row.lastRestart !== undefined) {
      out.push(['last restart', dateTimeFormatTimeAgo(row.lastRestart)]);
    } else if (c === 'lag' && row.lagSeconds !== undefined) {
      out.push(['protection lag', seconds(row.lagSeconds)]);
    } else if (c === 'rtt' && row.rttSeconds !== undefined) {
      out.push(['RTT', seconds(row.rttSeconds)]);
    } else if (c === 'budget' && row.budgetSeconds !== undefined) {
      out.push(['budget', seconds(row.budgetSeconds)]);
    }
  }
  return out;
}

/** What the panel learned about one process after restarting it, before the query shows it. */
type Learned = { generation: number } & Partial<Pick<StatusRow, 'state' | 'stateCode' | 'reason' | 'lastRestart'>>;

const rowKey = (agent: string, process: string) => `${agent}\u0000${process}`;

/**
 * The row as the panel knows it: after a restart from this panel, the new generation (and the
 * state the datasource reports after polling the agent) until the query's own data reaches
 * that generation. A second restart then confirms against the process as it is now.
 */
function withLearned(row: StatusRow, learned: Learned | undefined): StatusRow {
  if (!learned || (row.generation !== undefined && row.generation >= learned.generation)) {
    return row;
  }
  return { ...row, ...learned };
}

export function RestartPanel({ data, width, height, options }: Props) {
  const styles = useStyles2(getStyles);
  const { rows: queried, problem } = statusRows(data.series);
  const datasource = useMemo(() => panelDatasource(data), [data]);
  const [learned, setLearned] = useState<Record<string, Learned>>({});
  const rows = queried.map((row) => withLearned(row, learned[rowKey(row.agent, row.process)]));
  const uid = datasource?.uid;
  const onRestarted = useCallback(
    async (agent: string, process: string, answer: RestartAnswer) => {
      const key = rowKey(agent, process);
      const learn = (l: Learned) =>
        setLearned((all) => ((all[key]?.generation ?? -1) > l.generation ? all : { ...all, [key]: l }));
      learn({ generation: answer.generation, lastRestart: Date.now() });
      if (!uid) {
        return;
      }
      try {
        // The engine learns the new state at its next poll: ask for it now, then read it.
        await pollNow(uid, agent);
        const found = (await getAgent(uid, agent)).processes.find((p) => p.name === process);
        if (found && found.generation >= answer.generation) {
          learn({
            generation: found.generation,
            lastRestart: Date.now(),
            ...(found.state !== undefined && found.stateCode !== undefined
              ? { state: found.state, stateCode: found.stateCode, reason: found.reason ?? '' }
              : {}),
          });
        }
      } catch {
        // The result line already says the restart happened; the next refresh shows the state.
      }
    },
    [uid]
  );
  const permission = restartPermission(currentOrgRole(), restartRoleOf(datasource));
  const columns = options.columns ?? DEFAULT_COLUMNS;
  const full = options.layout !== 'compact';

  if (problem) {
    return (
      <Alert title="Vigil restart panel" severity="warning">
        {problem}
      </Alert>
    );
  }
  if (rows.length === 0) {
    return (
      <div data-testid={testIds.panel.empty}>
        <Text color="secondary">No agents: configure the fleet in the Vigil CDP datasource.</Text>
      </div>
    );
  }
  return (
    <div className={styles.wrapper} style={{ width, height }} data-testid={testIds.panel.root}>
      {rows.map((row) => {
        const shown = full ? details(row, columns) : [];
        return (
          <div
            key={`${row.agent}/${row.process}`}
            className={styles.row}
            data-testid={testIds.panel.row(row.agent, row.process)}
          >
            <Stack direction="row" alignItems="center" justifyContent="space-between" gap={1} wrap="wrap">
              <Stack direction="row" alignItems="center" gap={1}>
                <StateBadge state={row.state} code={row.stateCode} />
                <Text weight="medium">{row.agent}</Text>
                {row.process && <Text color="secondary">{row.process}</Text>}
                {!full && row.reason && (
                  <Text color="secondary" variant="bodySmall" truncate>
                    {row.reason}
                  </Text>
                )}
              </Stack>
              {row.process && (
                <RestartAction
                  datasourceUid={uid}
                  agent={row.agent}
                  process={row.process}
                  generation={row.generation}
                  permission={permission}
                  reasonRequired={Boolean(options.reasonRequired)}
                  onRestarted={(answer) => onRestarted(row.agent, row.process, answer)}
                />
              )}
            </Stack>
            {full && (shown.length > 0 || (columns.includes('reason') && row.reason)) && (
              <Stack direction="row" gap={2} wrap="wrap">
                {columns.includes('reason') && row.reason && (
                  <Text color="secondary" variant="bodySmall">
                    {row.reason}
                  </Text>
                )}
                {shown.map(([label, value]) => (
                  <Badge key={label} color="darkgrey" text={`${label} ${value}`} />
                ))}
              </Stack>
            )}
          </div>
        );
      })}
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  wrapper: css({ overflow: 'auto' }),
  row: css({
    padding: theme.spacing(0.5, 0),
    borderBottom: `1px solid ${theme.colors.border.weak}`,
  }),
});
