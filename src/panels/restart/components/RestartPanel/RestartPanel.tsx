import React from 'react';
import { css } from '@emotion/css';
import type { GrafanaTheme2, PanelProps } from '@grafana/data';
import { Alert, Badge, type BadgeColor, Stack, Text, useStyles2 } from '@grafana/ui';

import { stateByCode } from '../../../../shared/states';
import { statusRows } from '../../rows';
import type { RestartPanelOptions } from '../../types';
import { testIds } from '../../testIds';

type Props = PanelProps<RestartPanelOptions>;

const BADGE: Record<string, BadgeColor> = {
  green: 'green',
  blue: 'blue',
  yellow: 'orange',
  orange: 'orange',
  purple: 'purple',
  red: 'red',
  text: 'darkgrey',
};

export function RestartPanel({ data, width, height, options }: Props) {
  const styles = useStyles2(getStyles);
  const { rows, problem } = statusRows(data.series);

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
        const state = stateByCode(row.stateCode);
        return (
          <div
            key={`${row.agent}/${row.process}`}
            className={styles.row}
            data-testid={testIds.panel.row(row.agent, row.process)}
          >
            <Stack direction="row" alignItems="center" gap={1}>
              <Badge text={row.state || state.name} color={BADGE[state.color]} tooltip={state.meaning} />
              <Text weight="medium">{row.agent}</Text>
              {row.process && <Text color="secondary">{row.process}</Text>}
              {row.cluster && options.layout === 'full' && <Text color="secondary">cluster {row.cluster}</Text>}
            </Stack>
            {row.reason && (
              <Text color="secondary" variant="bodySmall">
                {row.reason}
              </Text>
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
