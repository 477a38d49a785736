import React, { useState } from 'react';
import { Button, ConfirmModal, Field, Input, Stack, Text, Tooltip } from '@grafana/ui';

import { getAgent, type RestartAnswer, ResourceError, restartProcess } from '../resources';
import type { RestartPermission } from '../roles';
import { testIds } from '../testIds';

export interface RestartActionProps {
  /** The Vigil datasource that restarts; undefined when the panel cannot tell which. */
  datasourceUid?: string;
  agent: string;
  process: string;
  /** The process generation the caller last saw; read from the agent when unknown. */
  generation?: number;
  permission: RestartPermission;
  reasonRequired: boolean;
  size?: 'sm' | 'md';
  onRestarted?: (answer: RestartAnswer) => void;
}

type Step =
  | { kind: 'idle' }
  | { kind: 'reading' }
  | { kind: 'confirming'; generation: number }
  | { kind: 'restarting'; generation: number }
  | { kind: 'done'; answer: RestartAnswer }
  | { kind: 'failed'; error: ResourceError };

/** The failure in the words a person acts on. */
export function describeFailure(error: ResourceError, minimum?: string): string {
  switch (error.kind) {
    case 'forbidden':
      return `Not allowed for your role${minimum ? ` (restarting needs ${minimum} or above)` : ''}: ${error.message}`;
    case 'conflict':
      return `Someone else restarted it first${
        error.generation !== undefined ? ` (it is now at generation ${error.generation})` : ''
      }. Check its state before restarting again. ${error.message}`;
    case 'unreachable':
      return `Agent unreachable, nothing was restarted: ${error.message}`;
    case 'not_found':
      return `Not found: ${error.message}`;
    case 'invalid_request':
      return `The restart was refused as invalid: ${error.message}`;
    case 'bad_answer':
      return error.message;
    default:
      return `Restart failed: ${error.message}`;
  }
}

export function RestartAction({
  datasourceUid,
  agent,
  process,
  generation,
  permission,
  reasonRequired,
  size = 'sm',
  onRestarted,
}: RestartActionProps) {
  const [step, setStep] = useState<Step>({ kind: 'idle' });
  const [reason, setReason] = useState('');

  const disabledBecause = !permission.allowed
    ? permission.reason
    : !datasourceUid
      ? 'The panel cannot tell which Vigil datasource to restart through: give its query a Vigil CDP datasource.'
      : undefined;

  const open = async () => {
    setReason('');
    if (generation !== undefined) {
      setStep({ kind: 'confirming', generation });
      return;
    }
    setStep({ kind: 'reading' });
    try {
      const detail = await getAgent(datasourceUid!, agent);
      const found = detail.processes.find((p) => p.name === process);
      if (!found) {
        throw new ResourceError('not_found', `agent ${agent} reports no process named ${process}`);
      }
      setStep({ kind: 'confirming', generation: found.generation });
    } catch (err) {
      setStep({ kind: 'failed', error: err instanceof ResourceError ? err : new ResourceError('failed', String(err)) });
    }
  };

  const confirm = async () => {
    if (step.kind !== 'confirming') {
      return;
    }
    const ifGeneration = step.generation;
    setStep({ kind: 'restarting', generation: ifGeneration });
    try {
      const answer = await restartProcess(datasourceUid!, agent, process, { reason: reason.trim(), ifGeneration });
      setStep({ kind: 'done', answer });
      onRestarted?.(answer);
    } catch (err) {
      setStep({ kind: 'failed', error: err instanceof ResourceError ? err : new ResourceError('failed', String(err)) });
    }
  };

  const busy = step.kind === 'reading' || step.kind === 'restarting';
  const button = (
    <Button
      size={size}
      variant="secondary"
      icon={busy ? 'spinner' : 'sync'}
      disabled={Boolean(disabledBecause) || busy}
      onClick={open}
      data-testid={testIds.restart.button(agent, process)}
      aria-label={`Restart ${process} on ${agent}`}
    >
      {step.kind === 'restarting' ? 'Restarting…' : step.kind === 'reading' ? 'Reading…' : 'Restart'}
    </Button>
  );

  return (
    <Stack direction="row" alignItems="center" gap={1}>
      {disabledBecause ? (
        <Tooltip content={disabledBecause}>
          {/* A disabled button gets no pointer events; the span carries the tooltip. */}
          <span tabIndex={0}>{button}</span>
        </Tooltip>
      ) : (
        button
      )}
      <span data-testid={testIds.restart.result(agent, process)} role="status">
        {step.kind === 'restarting' && (
          <Text color="secondary" variant="bodySmall">
            Restarting {process} on {agent}…
          </Text>
        )}
        {step.kind === 'done' && (
          <Text color="success" variant="bodySmall">
            Restarted: generation {step.answer.generation}
            {step.answer.pid != null ? `, pid ${step.answer.pid}` : ''}
          </Text>
        )}
        {step.kind === 'failed' && (
          <Text color="error" variant="bodySmall">
            {describeFailure(step.error, permission.minimum)}
          </Text>
        )}
      </span>
      <ConfirmModal
        isOpen={step.kind === 'confirming'}
        title={`Restart ${process} on ${agent}?`}
        confirmText="Restart"
        confirmVariant="destructive"
        icon="sync"
        disabled={reasonRequired && reason.trim() === ''}
        body={
          <Stack direction="column" gap={1}>
            <Text>
              Agent <Text weight="medium">{agent}</Text>, process <Text weight="medium">{process}</Text>, current
              generation <Text weight="medium">{step.kind === 'confirming' ? step.generation : ''}</Text>.
            </Text>
            <Text color="secondary" variant="bodySmall">
              The restart is refused if the process is no longer at this generation, so it never happens twice.
            </Text>
            <Field
              label={reasonRequired ? 'Reason' : 'Reason (optional)'}
              description="Recorded in the agent's events with your login."
              required={reasonRequired}
            >
              <Input
                value={reason}
                onChange={(e) => setReason(e.currentTarget.value)}
                placeholder="e.g. stuck after failover"
                data-testid={testIds.restart.reason}
              />
            </Field>
          </Stack>
        }
        onConfirm={confirm}
        onDismiss={() => setStep({ kind: 'idle' })}
      />
    </Stack>
  );
}
