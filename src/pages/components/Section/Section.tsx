import React from 'react';
import { Alert, LoadingPlaceholder, Stack, Text } from '@grafana/ui';

interface Props {
  title: string;
  loading?: boolean;
  error?: Error;
  children: React.ReactNode;
}

/** One titled part of a page, with its own loading state and error, so one failed query does not
 * hide the rest of the page. */
export function Section({ title, loading, error, children }: Props) {
  return (
    <Stack direction="column" gap={1}>
      <Text element="h3">{title}</Text>
      {error ? (
        <Alert severity="error" title={`${title}: could not load`}>
          {error.message}
        </Alert>
      ) : loading ? (
        <LoadingPlaceholder text="Loading…" />
      ) : (
        children
      )}
    </Stack>
  );
}
