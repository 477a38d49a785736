import { getBackendSrv } from '@grafana/runtime';
import { z } from 'zod';

import {
  agentDetailSchema,
  agentListSchema,
  errorBodySchema,
  monitorStatusSchema,
  restartAnswerSchema,
  type AgentDetail,
  type AgentListItem,
  type MonitorStatus,
  type RestartAnswer,
} from './contract.gen';
import { fieldPath } from './fieldPath';

// The Vigil datasource's resource routes (/api/datasources/uid/{uid}/resources/...), the one client
// of the app pages, the panels and the datasource's editors. Every answer is parsed with its schema,
// generated from the backend's Go types (src/shared/contract.gen.ts): a backend of another version
// gives a named error, never a blank page.

export type {
  AgentDetail,
  AgentEvent,
  AgentListItem,
  AgentProcess,
  BudgetBreakdown,
  LastAction,
  MonitorStatus,
  RestartAnswer,
} from './contract.gen';

/** A datasource instance in the browser (the editors hold one): its getResource sends its own headers. */
export interface ResourceCaller {
  getResource<T = unknown>(path: string, params?: Record<string, string>): Promise<T>;
}

/** Whom a call goes to: the datasource's uid (app pages, panels) or the datasource itself (editors). */
export type ResourceTarget = string | ResourceCaller;

export function resourceUrl(uid: string, ...path: string[]) {
  return `/api/datasources/uid/${encodeURIComponent(uid)}/resources/${path.map(encodeURIComponent).join('/')}`;
}

/** What went wrong with a resource call, classified for the words a person reads. */
export type ResourceFailureKind =
  'forbidden' | 'conflict' | 'unreachable' | 'not_found' | 'invalid_request' | 'bad_answer' | 'failed';

export class ResourceError extends Error {
  constructor(
    readonly kind: ResourceFailureKind,
    message: string,
    readonly status?: number,
    readonly generation?: number
  ) {
    super(message);
    this.name = 'ResourceError';
  }
}

interface FetchFailure {
  status?: number;
  data?: unknown;
  message?: string;
}

function failureKind(status: number | undefined): ResourceFailureKind {
  switch (status) {
    case 400:
    case 422:
      return 'invalid_request';
    case 401:
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 409:
      return 'conflict';
    case 502:
    case 503:
    case 504:
      return 'unreachable';
    default:
      return 'failed';
  }
}

/** Turns what getBackendSrv rejects with into a ResourceError with the backend's own message. */
export function toResourceError(err: unknown): ResourceError {
  if (err instanceof ResourceError) {
    return err;
  }
  const failure = (err ?? {}) as FetchFailure;
  const body = errorBodySchema.safeParse(failure.data);
  // Grafana's own API errors are {message}; the Vigil backend's are {error: {code, message}}.
  const grafanaMessage = z.object({ message: z.string() }).safeParse(failure.data);
  const message = body.success
    ? body.data.error.message
    : grafanaMessage.success
      ? grafanaMessage.data.message
      : typeof failure.data === 'string' && failure.data
        ? failure.data
        : (failure.message ?? (err instanceof Error ? err.message : 'no answer'));
  const generation = body.success
    ? (body.data.generation ?? (body.data.error.generation as number | undefined))
    : undefined;
  // Grafana answers 502 itself when the plugin process is down; status 0 is a browser-side failure.
  const kind = failure.status === 0 ? 'unreachable' : failureKind(failure.status);
  return new ResourceError(kind, message, failure.status, typeof generation === 'number' ? generation : undefined);
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ResourceError(
      'bad_answer',
      `The datasource answered ${what} in an unexpected shape (${fieldPath(issue.path) || 'body'}: ${issue.message}). Are the app and its backend the same version?`
    );
  }
  return result.data;
}

const quiet = { showErrorAlert: false, showSuccessAlert: false };

function get(target: ResourceTarget, ...path: string[]): Promise<unknown> {
  return typeof target === 'string'
    ? getBackendSrv().get(resourceUrl(target, ...path), undefined, undefined, quiet)
    : target.getResource(path.map(encodeURIComponent).join('/'));
}

/** GET agents: the configured agents, without tokens. */
export async function listAgents(target: ResourceTarget): Promise<AgentListItem[]> {
  try {
    return parse(agentListSchema, await get(target, 'agents'), 'GET agents').agents;
  } catch (err) {
    throw toResourceError(err);
  }
}

/** The clusters of these agents, once each, sorted. */
export function clustersOf(agents: AgentListItem[]): string[] {
  return [...new Set(agents.map((a) => a.cluster).filter(Boolean))].sort();
}

export async function getAgent(target: ResourceTarget, name: string): Promise<AgentDetail> {
  try {
    return parse(agentDetailSchema, await get(target, 'agents', name), `GET agents/${name}`);
  } catch (err) {
    throw toResourceError(err);
  }
}

export async function restartProcess(
  uid: string,
  agent: string,
  process: string,
  body: { reason: string; ifGeneration: number }
): Promise<RestartAnswer> {
  try {
    const answer = await getBackendSrv().post(
      resourceUrl(uid, 'agents', agent, 'processes', process, 'restart'),
      body,
      quiet
    );
    return parse(restartAnswerSchema, answer, 'the restart');
  } catch (err) {
    throw toResourceError(err);
  }
}

/** The monitor's status (Grafana admins only); asking neither starts nor keeps it running. */
export async function getMonitor(target: ResourceTarget): Promise<MonitorStatus> {
  try {
    return parse(monitorStatusSchema, await get(target, 'monitor'), 'GET monitor');
  } catch (err) {
    throw toResourceError(err);
  }
}

export async function pollNow(uid: string, agent?: string): Promise<void> {
  try {
    await getBackendSrv().post(resourceUrl(uid, 'poll'), agent ? { agent } : {}, quiet);
  } catch (err) {
    throw toResourceError(err);
  }
}
