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
            <Shared status={status.value} />
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

/** The history shared in PostgreSQL and this replica's part in the cluster (docs/ha.md), as Save & test says. */
function Shared({ status }: { status: Status }) {
  const { postgres, cluster } = status;
  return (
    <>
      {postgres &&
        (postgres.writable ? (
          <Text color="secondary">Shared history in PostgreSQL: written.</Text>
        ) : (
          <Alert severity="error" title="The shared history is not written to PostgreSQL">
            Not written since {postgres.since} ({postgres.lastError}). Polling and restarts go on;{' '}
            {postgres.spoolRecords} records ({postgres.spoolBytes} bytes) wait in the local buffer
            {postgres.dropped > 0 ? `, and ${postgres.dropped} observations were dropped because it was full` : ''}.
          </Alert>
        ))}
      {cluster && (
        <Text color="secondary">
          {cluster.self
            ? `Cluster: this replica is ${cluster.self} at ${cluster.addr}; ${cluster.members.length} members: ${cluster.members.join(', ')}. `
            : ''}
          This replica polls {cluster.owned} of {cluster.agents} agents.
        </Text>
      )}
      {cluster && cluster.unpolled.length > 0 && (
        <Alert severity="error" title="Agents no replica polls">
          Not polled by any replica for two intervals: {cluster.unpolled.join(', ')}. See the runbook: agents not polled
          by any monitor.
        </Alert>
      )}
    </>
  );
}

function sentence(text: string): string {
  const t = text.trim();
  return t ? `${t[0].toUpperCase()}${t.slice(1)}${t.endsWith('.') ? '' : '.'}` : t;
}
