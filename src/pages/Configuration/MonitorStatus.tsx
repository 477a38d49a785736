import React from 'react';
import { Alert, Stack, Text } from '@grafana/ui';

import { getMonitor, type MonitorStatus as Status } from '../../shared/resources';
import { useAsyncValue } from '../data/useAsyncValue';
import { testIds } from '../../shared/testIds';

/**
 * Whether the datasource's monitor runs and what keeps it running: nothing polls the agents or
 * restarts CDP until something queries the datasource, so after a Grafana restart only alert rules
 * keep it going. The same words as the datasource's Save & test.
 */
export function MonitorStatus({ uid, isAdmin }: { uid: string; isAdmin: boolean }) {
  const status = useAsyncValue<Status | undefined>(
    () => (isAdmin ? getMonitor(uid) : Promise.resolve(undefined)),
    [uid, isAdmin]
  );
  return (
    <div data-testid={testIds.config.monitor}>
      <Stack direction="column" gap={1}>
        <Text element="h3">Monitor</Text>
        {!isAdmin ? (
          <Text color="secondary">
            The monitor&apos;s status (it names folders on the Grafana server) is shown to admins.
          </Text>
        ) : status.error ? (
          <Alert severity="error" title="Could not read the monitor's status">
            {status.error.message}
          </Alert>
        ) : !status.value ? (
          <Text color="secondary">Reading the monitor&apos;s status…</Text>
        ) : (
          <>
            <Text>{sentence(status.value.summary)}</Text>
            <Text color="secondary">
              History: {status.value.history.path} (from {status.value.history.source}
              {status.value.history.durable ? '; kept across reboots' : ''}).
            </Text>
            {status.value.warning && (
              <Alert
                severity="warning"
                title={
                  status.value.keptAliveByAlerts
                    ? 'The history may not survive a reboot'
                    : 'Nothing keeps the monitor running'
                }
              >
                {sentence(status.value.warning)} Install the alert rules below: they query the datasource every
                evaluation, which keeps the monitor polling and restarting CDP with no dashboard open.
              </Alert>
            )}
          </>
        )}
      </Stack>
    </div>
  );
}

function sentence(text: string): string {
  const t = text.trim();
  return t ? `${t[0].toUpperCase()}${t.slice(1)}${t.endsWith('.') ? '' : '.'}` : t;
}
