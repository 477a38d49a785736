import React from 'react';
import type { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { Alert, Button, FieldSet, InlineField, RadioButtonGroup, SecretInput, Stack, Switch, Text } from '@grafana/ui';

import { compactPolicy, DEFAULT_POLICY, DEFAULT_POLL_INTERVAL } from '../../fleet';
import { DEFAULT_RESTART_ROLE, SETTING_CHOICES, SETTING_DESCRIPTIONS } from '../../../shared/contract.gen';
import { validateOptions } from '../../settings';
import {
  agentSecretKey,
  type AgentSettings,
  type PolicySettings,
  type RestartRole,
  type VigilOptions,
  type VigilSecureOptions,
} from '../../types';
import { testIds } from '../testIds';
import { AgentRow } from './AgentRow';
import { BudgetSummary } from './BudgetSummary';
import { AUTO_RESTART_FIELDS, BUDGET_FACTORS, MEASURED_FIELDS, type PolicyField } from './factors';
import { LABEL_WIDTH, numberOrText, TextField } from './fields';
import { type SharedOptions, validateShared } from './replicas';
import { dropAgentSecrets, moveAgentSecrets, resetSecret, setSecret } from './secrets';
import { SharedHistorySection } from './SharedHistorySection';

type Props = DataSourcePluginOptionsEditorProps<VigilOptions, VigilSecureOptions>;
type Section = 'budget' | 'measured' | 'autoRestart';

// The choices and what they mean come from the backend (pkg/fleet, pkg/models) through the contract.
const COMBINE_OPTIONS = SETTING_CHOICES.combine.map((value) => ({
  label: value,
  value,
  description: SETTING_DESCRIPTIONS.combine[value],
}));
const MODE_OPTIONS = SETTING_CHOICES.mode.map((value) => ({
  label: value,
  value,
  description: SETTING_DESCRIPTIONS.mode[value],
}));
const ROLE_OPTIONS: Array<{ label: string; value: RestartRole }> = SETTING_CHOICES.restartRole.map((value) => ({
  label: value,
  value,
}));

// Grafana's settings page of a Vigil datasource. jsonData uses the keys of the CLI's fleet.yaml and
// holds only what a person set; every empty field shows the value in force as its placeholder.
export function ConfigEditor({ options, onOptionsChange }: Props) {
  const { jsonData } = options;
  const secureJsonFields = (options.secureJsonFields ?? {}) as Record<string, boolean>;
  const secureJsonData = (options.secureJsonData ?? {}) as Record<string, string | undefined>;
  const agents = jsonData.agents ?? [];
  const defaults = jsonData.defaults ?? {};
  const errors = { ...validateOptions(jsonData), ...validateShared(jsonData, secureJsonData) };
  const problems = Object.entries(errors);

  const setJsonData = (patch: Partial<VigilOptions>, base = options) =>
    onOptionsChange({ ...base, jsonData: { ...base.jsonData, ...patch } });

  const setDefault = (section: Section, key: string, value: unknown) => {
    const next = compactPolicy({ ...defaults, [section]: { ...defaults[section], [key]: value } } as PolicySettings);
    setJsonData({ defaults: Object.keys(next).length ? next : undefined });
  };

  const setAgent = (index: number, agent: AgentSettings) => {
    const before = agents[index];
    const base =
      before.name !== agent.name ? moveAgentSecrets(options, before.name.trim(), agent.name.trim()) : options;
    setJsonData({ agents: agents.map((a, i) => (i === index ? compactPolicy(agent) : a)) }, base);
  };

  const removeAgent = (index: number) => {
    const base = dropAgentSecrets(options, agents[index].name.trim());
    setJsonData({ agents: agents.filter((_, j) => j !== index) }, base);
  };

  const placeholder = (section: Section, key: string) =>
    String((DEFAULT_POLICY[section] as Record<string, unknown>)[key]);
  const policyField = <K extends string>(section: Section, f: PolicyField<K>, value: string | number | undefined) => (
    <TextField
      key={f.key}
      label={f.label}
      path={`defaults.${section}.${f.key}`}
      errors={errors}
      value={value}
      placeholder={placeholder(section, f.key)}
      explanation={f.explanation}
      testId={section === 'measured' ? testIds.configEditor.measured(f.key) : testIds.configEditor.autoRestart(f.key)}
      onChange={(v) => setDefault(section, f.key, f.numeric ? numberOrText(v) : v)}
    />
  );
  const mode = defaults.budget?.mode ?? DEFAULT_POLICY.budget.mode;
  const auto = { ...DEFAULT_POLICY.autoRestart, ...defaults.autoRestart };

  return (
    <div data-testid={testIds.configEditor.root}>
      {problems.length > 0 && (
        <Alert
          severity="warning"
          title={`${problems.length} ${problems.length === 1 ? 'setting needs' : 'settings need'} attention before Save & test`}
          data-testid={testIds.configEditor.problems}
        >
          <ul>
            {problems.map(([path, message]) => (
              <li key={path}>
                {path}: {message}
              </li>
            ))}
          </ul>
        </Alert>
      )}

      <FieldSet label="Polling">
        <TextField
          label="Poll interval"
          path="pollInterval"
          errors={errors}
          value={jsonData.pollInterval}
          placeholder={DEFAULT_POLL_INTERVAL}
          tooltip="How often every agent is asked for its status: the longest outage you accept before a restart, against the cost of polling."
          explanation="At least 1s. A Go duration: 10s, 1m30s."
          testId={testIds.configEditor.pollInterval}
          onChange={(v) => setJsonData({ pollInterval: v || undefined })}
        />
      </FieldSet>

      <FieldSet label="Agents">
        <Stack direction="column" gap={1}>
          {errors.agents && <Text color="error">agents: {errors.agents}</Text>}
          {agents.map((agent, i) => (
            <AgentRow
              key={i}
              index={i}
              agent={agent}
              options={jsonData}
              errors={errors}
              secureJsonFields={secureJsonFields}
              secureJsonData={secureJsonData}
              onChange={(a) => setAgent(i, a)}
              onRemove={() => removeAgent(i)}
              onSecret={(kind, value) =>
                onOptionsChange(setSecret(options, agentSecretKey(agent.name.trim(), kind), value))
              }
              onResetSecret={(kind) => onOptionsChange(resetSecret(options, agentSecretKey(agent.name.trim(), kind)))}
            />
          ))}
          <div>
            <Button
              variant="secondary"
              icon="plus"
              onClick={() => setJsonData({ agents: [...agents, { name: '', url: '' }] })}
              data-testid={testIds.configEditor.addAgent}
            >
              Add agent
            </Button>
          </div>
        </Stack>
      </FieldSet>

      <FieldSet label="Agent tokens">
        <InlineField
          label="Read token"
          labelWidth={LABEL_WIDTH}
          tooltip="Sent to every agent on status polls, unless the agent has its own."
        >
          <SecretInput
            width={40}
            isConfigured={Boolean(secureJsonFields.readToken)}
            value={secureJsonData.readToken ?? ''}
            onChange={(e) => onOptionsChange(setSecret(options, 'readToken', e.currentTarget.value))}
            onReset={() => onOptionsChange(resetSecret(options, 'readToken'))}
            data-testid={testIds.configEditor.readToken}
          />
        </InlineField>
        <InlineField
          label="Control token"
          labelWidth={LABEL_WIDTH}
          tooltip="Sent to agents only for restart and stop, by the Grafana server; it never reaches a browser."
        >
          <SecretInput
            width={40}
            isConfigured={Boolean(secureJsonFields.controlToken)}
            value={secureJsonData.controlToken ?? ''}
            onChange={(e) => onOptionsChange(setSecret(options, 'controlToken', e.currentTarget.value))}
            onReset={() => onOptionsChange(resetSecret(options, 'controlToken'))}
            data-testid={testIds.configEditor.controlToken}
          />
        </InlineField>
      </FieldSet>

      <FieldSet label="Timeout budget">
        <Stack direction="column" gap={1}>
          <Text color="secondary">
            budget = response time + processing + combine(allowances). A silent agent is in GRACE within its budget and
            FAILED beyond it.
          </Text>
          <BudgetSummary options={jsonData} />
          <div>
            {BUDGET_FACTORS.map((f) => (
              <TextField
                key={f.key}
                label={f.label}
                path={`defaults.budget.${f.key}`}
                errors={errors}
                value={defaults.budget?.[f.key]}
                placeholder={f.fallback}
                explanation={f.explanation}
                testId={testIds.configEditor.budgetFactor(f.key)}
                onChange={(v) => setDefault('budget', f.key, v)}
              />
            ))}
            <InlineField
              label="Combine allowances"
              labelWidth={LABEL_WIDTH}
              invalid={Boolean(errors['defaults.budget.combine'])}
              error={errors['defaults.budget.combine']}
            >
              <RadioButtonGroup
                options={COMBINE_OPTIONS}
                value={defaults.budget?.combine ?? DEFAULT_POLICY.budget.combine}
                onChange={(v) => setDefault('budget', 'combine', v)}
                data-testid={testIds.configEditor.combine}
              />
            </InlineField>
            <InlineField label="Mode" labelWidth={LABEL_WIDTH}>
              <RadioButtonGroup
                options={MODE_OPTIONS}
                value={mode}
                onChange={(v) => setDefault('budget', 'mode', v)}
                data-testid={testIds.configEditor.mode}
              />
            </InlineField>
            {mode === 'measured' && (
              <>{MEASURED_FIELDS.map((f) => policyField('measured', f, defaults.measured?.[f.key]))}</>
            )}
          </div>
        </Stack>
      </FieldSet>

      <FieldSet label="Auto-restart">
        <InlineField
          label="Enabled"
          labelWidth={LABEL_WIDTH}
          tooltip="Restart a CDP process that should run and does not, through its agent."
        >
          <Switch
            value={auto.enabled}
            onChange={(e) => setDefault('autoRestart', 'enabled', e.currentTarget.checked)}
            data-testid={testIds.configEditor.autoRestart('enabled')}
          />
        </InlineField>
        {AUTO_RESTART_FIELDS.map((f) => policyField('autoRestart', f, defaults.autoRestart?.[f.key]))}
        <InlineField
          label="Stop when not expected"
          labelWidth={LABEL_WIDTH}
          tooltip="After a failover, stop CDP on the node that is no longer active, once it runs on the new active node: two nodes never write one store."
        >
          <Switch
            value={auto.stopWhenNotExpected}
            onChange={(e) => setDefault('autoRestart', 'stopWhenNotExpected', e.currentTarget.checked)}
            data-testid={testIds.configEditor.autoRestart('stopWhenNotExpected')}
          />
        </InlineField>
      </FieldSet>

      <FieldSet label="Protection objective">
        <TextField
          label="RPO"
          path="defaults.rpo"
          errors={errors}
          value={defaults.rpo}
          placeholder={DEFAULT_POLICY.rpo}
          explanation="Protection lag above this marks an agent DEGRADED; 0 switches the check off."
          testId={testIds.configEditor.rpo}
          onChange={(v) => {
            const next = compactPolicy({ ...defaults, rpo: v });
            setJsonData({ defaults: Object.keys(next).length ? next : undefined });
          }}
        />
      </FieldSet>

      <FieldSet label="Access and history">
        <InlineField
          label="Restart role"
          labelWidth={LABEL_WIDTH}
          tooltip="The least Grafana role allowed to restart a CDP process from a panel."
          invalid={Boolean(errors.restartRole)}
          error={errors.restartRole && `restartRole: ${errors.restartRole}`}
        >
          <RadioButtonGroup
            options={ROLE_OPTIONS}
            value={jsonData.restartRole ?? DEFAULT_RESTART_ROLE}
            onChange={(v) => setJsonData({ restartRole: v })}
            data-testid={testIds.configEditor.restartRole}
          />
        </InlineField>
        <TextField
          label="History path"
          path="historyPath"
          errors={errors}
          value={jsonData.historyPath}
          width={40}
          placeholder="under Grafana's data directory"
          explanation={
            (jsonData as SharedOptions).history?.postgres?.trim()
              ? 'With the history in PostgreSQL, the monitor keeps here only the writes PostgreSQL could not take yet.'
              : 'Where the monitor keeps observations and events on the Grafana server.'
          }
          testId={testIds.configEditor.historyPath}
          onChange={(v) => setJsonData({ historyPath: v || undefined })}
        />
        <TextField
          label="Idle stop"
          path="idleStop"
          errors={errors}
          value={jsonData.idleStop}
          width={20}
          placeholder="15m"
          explanation="The monitor stops after this long with no query or resource call (Grafana never tells a plugin that a datasource was deleted) and starts again on the next one. Keep it longer than your alert rules' evaluation interval: they are what keep it running."
          testId={testIds.configEditor.idleStop}
          onChange={(v) => setJsonData({ idleStop: v || undefined })}
        />
      </FieldSet>

      <SharedHistorySection
        jsonData={jsonData}
        errors={errors}
        secureJsonFields={secureJsonFields}
        secureJsonData={secureJsonData}
        onJsonData={(next) => onOptionsChange({ ...options, jsonData: next })}
        onSecret={(key, value) => onOptionsChange(setSecret(options, key, value))}
        onResetSecret={(key) => onOptionsChange(resetSecret(options, key))}
      />
    </div>
  );
}
