import React from 'react';
import { Box, InlineField, Input, Stack, Text } from '@grafana/ui';

// Small building blocks of the settings page: one labelled input that shows the error for its
// field path and a one-line explanation next to it.

export const LABEL_WIDTH = 26;

interface TextFieldProps {
  label: string;
  path: string;
  errors: Record<string, string>;
  value: string | number | undefined;
  placeholder?: string;
  explanation?: string;
  tooltip?: string;
  width?: number;
  labelWidth?: number;
  testId: string;
  onChange: (text: string) => void;
}

export function TextField({
  label,
  path,
  errors,
  value,
  placeholder,
  explanation,
  tooltip,
  width = 16,
  labelWidth = LABEL_WIDTH,
  testId,
  onChange,
}: TextFieldProps) {
  const field = (
    <InlineField
      label={label}
      labelWidth={labelWidth}
      tooltip={tooltip}
      invalid={Boolean(errors[path])}
      error={errors[path] ? `${path}: ${errors[path]}` : undefined}
    >
      <Input
        width={width}
        value={value ?? ''}
        placeholder={placeholder}
        onChange={(e) => onChange(e.currentTarget.value)}
        data-testid={testId}
        aria-label={label}
      />
    </InlineField>
  );
  if (!explanation) {
    return field;
  }
  return (
    <Stack gap={1} alignItems="flex-start">
      {field}
      <Box paddingTop={1}>
        <Text color="secondary" variant="bodySmall">
          {explanation}
        </Text>
      </Box>
    </Stack>
  );
}

/** A number as typed: kept as a number when it is one, else as text so the validation can name it. */
export function numberOrText(text: string): number | string | undefined {
  const t = text.trim();
  if (t === '') {
    return undefined;
  }
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}
