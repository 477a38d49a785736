import React, { type ChangeEvent } from 'react';
import type { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { Button, FieldSet, InlineField, InlineFieldRow, Input, SecretInput, Stack } from '@grafana/ui';

import { validateOptions } from '../../settings';
import type { AgentSettings, VigilOptions, VigilSecureOptions } from '../../types';
import { testIds } from '../testIds';

type Props = DataSourcePluginOptionsEditorProps<VigilOptions, VigilSecureOptions>;

export function ConfigEditor({ options, onOptionsChange }: Props) {
  const { jsonData, secureJsonFields } = options;
  const secureJsonData = options.secureJsonData ?? {};
  const agents = jsonData.agents ?? [];
  const errors = validateOptions(jsonData);

  const setJsonData = (patch: Partial<VigilOptions>) =>
    onOptionsChange({ ...options, jsonData: { ...jsonData, ...patch } });

  const setAgent = (index: number, patch: Partial<AgentSettings>) =>
    setJsonData({ agents: agents.map((a, i) => (i === index ? { ...a, ...patch } : a)) });

  const setSecret = (key: keyof VigilSecureOptions) => (event: ChangeEvent<HTMLInputElement>) =>
    onOptionsChange({ ...options, secureJsonData: { ...secureJsonData, [key]: event.target.value } });

  const resetSecret = (key: keyof VigilSecureOptions) => () =>
    onOptionsChange({
      ...options,
      secureJsonFields: { ...secureJsonFields, [key]: false },
      secureJsonData: { ...secureJsonData, [key]: '' },
    });

  return (
    <div data-testid={testIds.configEditor.root}>
      <FieldSet label="Polling">
        <InlineField
          label="Poll interval"
          labelWidth={20}
          tooltip="How often every agent is asked for its status: the longest outage you accept before a restart, against the cost of polling."
          invalid={Boolean(errors.pollInterval)}
          error={errors.pollInterval}
        >
          <Input
            width={20}
            placeholder="10s"
            value={jsonData.pollInterval ?? ''}
            onChange={(e) => setJsonData({ pollInterval: e.currentTarget.value })}
            data-testid={testIds.configEditor.pollInterval}
          />
        </InlineField>
      </FieldSet>

      <FieldSet label="Agents">
        {agents.map((agent, i) => (
          <InlineFieldRow key={i}>
            <InlineField
              label="Name"
              labelWidth={10}
              invalid={Boolean(errors[`agents[${i}].name`])}
              error={errors[`agents[${i}].name`]}
            >
              <Input
                width={20}
                value={agent.name}
                onChange={(e) => setAgent(i, { name: e.currentTarget.value })}
                data-testid={testIds.configEditor.agentName(i)}
              />
            </InlineField>
            <InlineField
              label="URL"
              labelWidth={8}
              invalid={Boolean(errors[`agents[${i}].url`])}
              error={errors[`agents[${i}].url`]}
            >
              <Input
                width={36}
                placeholder="http://10.0.0.5:7070"
                value={agent.url}
                onChange={(e) => setAgent(i, { url: e.currentTarget.value })}
                data-testid={testIds.configEditor.agentUrl(i)}
              />
            </InlineField>
            <InlineField label="Cluster" labelWidth={10}>
              <Input
                width={16}
                value={agent.cluster ?? ''}
                onChange={(e) => setAgent(i, { cluster: e.currentTarget.value || undefined })}
              />
            </InlineField>
            <Button
              variant="secondary"
              icon="trash-alt"
              aria-label={`Remove agent ${agent.name || i + 1}`}
              onClick={() => setJsonData({ agents: agents.filter((_, j) => j !== i) })}
            />
          </InlineFieldRow>
        ))}
        <Stack>
          <Button
            variant="secondary"
            icon="plus"
            onClick={() => setJsonData({ agents: [...agents, { name: '', url: '' }] })}
            data-testid={testIds.configEditor.addAgent}
          >
            Add agent
          </Button>
        </Stack>
      </FieldSet>

      <FieldSet label="Agent tokens">
        <InlineField label="Read token" labelWidth={20} tooltip="Sent to every agent on status polls.">
          <SecretInput
            width={40}
            isConfigured={Boolean(secureJsonFields?.readToken)}
            value={secureJsonData.readToken ?? ''}
            onChange={setSecret('readToken')}
            onReset={resetSecret('readToken')}
            data-testid={testIds.configEditor.readToken}
          />
        </InlineField>
        <InlineField
          label="Control token"
          labelWidth={20}
          tooltip="Sent to agents only for restart and stop; never leaves the server."
        >
          <SecretInput
            width={40}
            isConfigured={Boolean(secureJsonFields?.controlToken)}
            value={secureJsonData.controlToken ?? ''}
            onChange={setSecret('controlToken')}
            onReset={resetSecret('controlToken')}
            data-testid={testIds.configEditor.controlToken}
          />
        </InlineField>
      </FieldSet>
    </div>
  );
}
