import React, { useState } from 'react';
import {
  Button,
  Collapse,
  InlineField,
  InlineFieldRow,
  Input,
  RadioButtonGroup,
  SecretInput,
  Stack,
  Text,
} from '@grafana/ui';

import { describeBudget } from '../../../shared/budget';
import { formatClock, formatSeconds } from '../../../shared/duration';
import { budgetSeconds, hasOverrides } from '../../fleet';
import { agentSecretKey, type AgentSettings, type TokenKind, type VigilOptions } from '../../types';
import { testIds } from '../testIds';
import { BUDGET_FACTORS } from './factors';
import { TextField } from './fields';

interface Props {
  index: number;
  agent: AgentSettings;
  options: VigilOptions;
  errors: Record<string, string>;
  secureJsonFields: Record<string, boolean>;
  secureJsonData: Record<string, string | undefined>;
  onChange: (agent: AgentSettings) => void;
  onRemove: () => void;
  onSecret: (kind: TokenKind, value: string) => void;
  onResetSecret: (kind: TokenKind) => void;
}

const ENABLED_OPTIONS = [
  { label: 'fleet default', value: 'inherit' },
  { label: 'on', value: 'on' },
  { label: 'off', value: 'off' },
];

export function AgentRow({
  index: i,
  agent,
  options,
  errors,
  secureJsonFields,
  secureJsonData,
  onChange,
  onRemove,
  onSecret,
  onResetSecret,
}: Props) {
  const [open, setOpen] = useState(hasOverrides(agent));
  const at = `agents[${i}]`;
  const fleet = budgetSeconds(options);
  const own = budgetSeconds(options, agent);
  const clustered = Boolean(agent.cluster?.trim());
  const validName = Boolean(agent.name) && !errors[`${at}.name`];
  const setBudget = (key: string, value: string) =>
    onChange({ ...agent, budget: { ...agent.budget, [key]: value || undefined } });
  const enabled = agent.autoRestart?.enabled;
  const pushes = agent.transport === 'push';

  const secret = (kind: TokenKind, label: string, testId: string) => {
    const key = agentSecretKey(agent.name, kind);
    return (
      <InlineField
        label={label}
        labelWidth={20}
        disabled={!validName}
        tooltip={`Stored as ${agentSecretKey(agent.name || '<name>', kind)}; renaming the agent clears a stored one. ${
          kind === 'reportToken'
            ? 'The agent signs its reports with it (16+ characters, its own: give every agent another).'
            : 'Empty: the datasource-wide token is used.'
        }`}
      >
        <SecretInput
          width={30}
          isConfigured={validName && Boolean(secureJsonFields[key])}
          value={validName ? (secureJsonData[key] ?? '') : ''}
          placeholder={
            validName
              ? kind === 'reportToken'
                ? "this agent's own token"
                : 'datasource-wide token'
              : 'name the agent first'
          }
          onChange={(e) => onSecret(kind, e.currentTarget.value)}
          onReset={() => onResetSecret(kind)}
          data-testid={testId}
        />
      </InlineField>
    );
  };

  return (
    <Stack direction="column" gap={0}>
      <InlineFieldRow>
        <InlineField
          label="Name"
          labelWidth={10}
          invalid={Boolean(errors[`${at}.name`])}
          error={fieldError(errors, `${at}.name`)}
        >
          <Input
            width={20}
            value={agent.name}
            placeholder="node-a"
            onChange={(e) => onChange({ ...agent, name: e.currentTarget.value })}
            data-testid={testIds.configEditor.agentName(i)}
            aria-label={`Agent ${i + 1} name`}
          />
        </InlineField>
        <InlineField
          label="URL"
          labelWidth={8}
          invalid={Boolean(errors[`${at}.url`])}
          error={fieldError(errors, `${at}.url`)}
        >
          <Input
            width={34}
            placeholder={pushes ? 'none: it reports by itself' : 'http://10.0.0.5:7070'}
            value={agent.url}
            onChange={(e) => onChange({ ...agent, url: e.currentTarget.value })}
            data-testid={testIds.configEditor.agentUrl(i)}
            aria-label={`Agent ${i + 1} URL`}
          />
        </InlineField>
        <InlineField
          label="Cluster"
          labelWidth={10}
          tooltip="Set for cluster members: only they get the failover allowance."
        >
          <Input
            width={16}
            placeholder="none"
            value={agent.cluster ?? ''}
            onChange={(e) => onChange({ ...agent, cluster: e.currentTarget.value || undefined })}
            data-testid={testIds.configEditor.agentCluster(i)}
            aria-label={`Agent ${i + 1} cluster`}
          />
        </InlineField>
        <Button
          variant="secondary"
          icon="trash-alt"
          aria-label={`Remove agent ${agent.name || i + 1}`}
          onClick={onRemove}
          data-testid={testIds.configEditor.agentRemove(i)}
        />
      </InlineFieldRow>
      <div data-testid={testIds.configEditor.agentOverrides(i)}>
        <Collapse
          label={`Own settings and tokens of ${agent.name || `agent ${i + 1}`}${hasOverrides(agent) ? ' (overridden)' : ''}`}
          isOpen={open}
          onToggle={() => setOpen(!open)}
        >
          <Stack direction="column" gap={0}>
            <Text color="secondary" variant="bodySmall">
              Empty fields use the fleet-wide value, shown greyed.
            </Text>
            {BUDGET_FACTORS.map((f) => (
              <TextField
                key={f.key}
                label={f.label}
                path={`${at}.budget.${f.key}`}
                errors={errors}
                value={agent.budget?.[f.key]}
                placeholder={String(options.defaults?.budget?.[f.key] || f.fallback)}
                testId={testIds.configEditor.agentBudgetFactor(i, f.key)}
                onChange={(v) => setBudget(f.key, v)}
                explanation={f.key === 'failover' && !clustered ? 'not applied: this agent has no cluster' : undefined}
              />
            ))}
            <InlineField label="Auto-restart" labelWidth={26}>
              <RadioButtonGroup
                options={ENABLED_OPTIONS}
                value={enabled === undefined ? 'inherit' : enabled ? 'on' : 'off'}
                onChange={(v) =>
                  onChange({
                    ...agent,
                    autoRestart: { ...agent.autoRestart, enabled: v === 'inherit' ? undefined : v === 'on' },
                  })
                }
              />
            </InlineField>
            <TextField
              label="RPO"
              path={`${at}.rpo`}
              errors={errors}
              value={agent.rpo}
              placeholder={String(options.defaults?.rpo || '60s')}
              testId={testIds.configEditor.agentRpo(i)}
              onChange={(v) => onChange({ ...agent, rpo: v || undefined })}
            />
            <InlineField
              label="Transport"
              labelWidth={26}
              tooltip="Polled: Vigil asks the agent. Reports by itself: for a machine Grafana cannot reach; the agent sends its status to this datasource's reports resource (docs/push.md)."
            >
              <RadioButtonGroup
                options={TRANSPORT_OPTIONS}
                value={pushes ? 'push' : 'poll'}
                onChange={(v) =>
                  onChange({
                    ...agent,
                    transport: v === 'push' ? 'push' : undefined,
                    reportEvery: v === 'push' ? agent.reportEvery : undefined,
                  })
                }
                data-testid={testIds.configEditor.agentTransport(i)}
              />
            </InlineField>
            {pushes && (
              <TextField
                label="Report every"
                path={`${at}.reportEvery`}
                errors={errors}
                value={agent.reportEvery}
                placeholder={String(options.pollInterval || '10s')}
                testId={testIds.configEditor.agentReportEvery(i)}
                onChange={(v) => onChange({ ...agent, reportEvery: v || undefined })}
              />
            )}
            {pushes && secret('reportToken', 'Own report token', testIds.configEditor.agentReportToken(i))}
            {!pushes && secret('readToken', 'Own read token', testIds.configEditor.agentReadToken(i))}
            {!pushes && secret('controlToken', 'Own control token', testIds.configEditor.agentControlToken(i))}
            <Text data-testid={testIds.configEditor.agentBudget(i)}>
              {own
                ? `Worst-case budget of this agent: ${describeBudget(own, clustered, formatSeconds, formatClock)}${
                    fleet && own.combine === fleet.combine && sameBudget(own, fleet) ? ' (fleet default)' : ''
                  }`
                : 'Worst-case budget of this agent: fix the flagged factors to see it'}
            </Text>
          </Stack>
        </Collapse>
      </div>
    </Stack>
  );
}

const TRANSPORT_OPTIONS = [
  { label: 'Polled', value: 'poll' },
  { label: 'Reports by itself', value: 'push' },
];

function fieldError(errors: Record<string, string>, path: string) {
  return errors[path] ? `${path}: ${errors[path]}` : undefined;
}

function sameBudget(a: object, b: object) {
  return JSON.stringify(a) === JSON.stringify(b);
}
