import React from 'react';
import type { AppRootProps } from '@grafana/data';
import { Stack, Text, TextLink } from '@grafana/ui';

import { CLIENT_STATES } from '../../shared/states';
import { testIds } from '../testIds';

// The app's root. The fleet pages arrive with the app issue; until then it explains what the
// app bundles and where to start.
export default function App(_: AppRootProps) {
  return (
    <div data-testid={testIds.app.root}>
      <Stack direction="column" gap={2}>
        <Text element="h2">Vigil CDP</Text>
        <Text>
          Vigil keeps continuous data protection running on every protected machine. Add a Vigil CDP datasource with
          your agents, then use the provisioned dashboards and alert rules.
        </Text>
        <Text element="h4">Client states</Text>
        <ul>
          {CLIENT_STATES.map((s) => (
            <li key={s.code}>
              <Text weight="medium">
                {s.code} {s.name}
              </Text>{' '}
              <Text color="secondary">{s.meaning}</Text>
            </li>
          ))}
        </ul>
        <TextLink href="/connections/datasources/new" inline={false}>
          Add a Vigil CDP datasource
        </TextLink>
      </Stack>
    </div>
  );
}
