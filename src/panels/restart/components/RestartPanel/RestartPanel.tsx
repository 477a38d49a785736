import React, { useMemo } from 'react';
import { css } from '@emotion/css';
import {
  dateTimeFormatTimeAgo,
  formattedValueToString,
  getValueFormat,
  type GrafanaTheme2,
  type PanelProps,
} from '@grafana/data';
import { Alert, Badge, Stack, Text, useStyles2 } from '@grafana/ui';

import { RestartAction } from '../../../../components/RestartAction/RestartAction';
import { StateBadge } from '../../../../components/StateBadge/StateBadge';
import { panelDatasource, restartRoleOf } from '../../../../components/data/datasource';
import { currentOrgRole, restartPermission } from '../../../../components/roles';
import { statusRows, type StatusRow } from '../../rows';
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

export function RestartPanel({ data, width, height, options }: Props) {
  const styles = useStyles2(getStyles);
  const { rows, problem } = statusRows(data.series);
  const datasource = useMemo(() => panelDatasource(data), [data]);
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
                  datasourceUid={datasource?.uid}
                  agent={row.agent}
                  process={row.process}
                  generation={row.generation}
                  permission={permission}
                  reasonRequired={Boolean(options.reasonRequired)}
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
