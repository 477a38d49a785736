import { getBackendSrv } from '@grafana/runtime';
import { z } from 'zod';

// The Vigil datasource's resource routes (/api/datasources/uid/{uid}/resources/...). Every answer
// is parsed with a schema: a backend of another version gives a named error, never a blank page.

const errorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string() }).loose(),
  generation: z.number().optional(),
});

const agentsSchema = z.object({
  agents: z.array(z.object({ name: z.string(), url: z.string().optional(), cluster: z.string().optional() }).loose()),
});
export type AgentListItem = z.infer<typeof agentsSchema>['agents'][number];

const allowanceSchema = z
  .object({
    name: z.string(),
    seconds: z.number(),
    source: z.string().optional(),
  })
  .loose();

const budgetSchema = z
  .object({
    totalSeconds: z.number(),
    responseTimeSeconds: z.number().optional(),
    processingSeconds: z.number().optional(),
    combine: z.string().optional(),
    mode: z.string().optional(),
    allowances: z.array(allowanceSchema).default([]),
  })
  .loose();
export type BudgetBreakdown = z.infer<typeof budgetSchema>;

const processSchema = z
  .object({
    name: z.string(),
    state: z.string().optional(),
    stateCode: z.number().optional(),
    reason: z.string().optional(),
    generation: z.number(),
    pid: z.number().nullable().optional(),
    startedAt: z.string().nullable().optional(),
    restarts: z.number().optional(),
    lagSeconds: z.number().nullable().optional(),
    autoRestartSuspended: z.boolean().nullable().optional(),
  })
  .loose();
export type AgentProcess = z.infer<typeof processSchema>;

const eventSchema = z
  .object({
    time: z.string(),
    kind: z.string(),
    agent: z.string().optional(),
    process: z.string().optional(),
    text: z.string().optional(),
    user: z.string().optional(),
  })
  .loose();
export type AgentEvent = z.infer<typeof eventSchema>;

const agentDetailSchema = z
  .object({
    name: z.string(),
    cluster: z.string().optional(),
    role: z.string().optional(),
    state: z.string().optional(),
    stateCode: z.number().optional(),
    reason: z.string().optional(),
    rttSeconds: z.number().nullable().optional(),
    lagSeconds: z.number().nullable().optional(),
    lastPollAt: z.string().nullable().optional(),
    budget: budgetSchema.optional(),
    processes: z.array(processSchema).default([]),
    events: z.array(eventSchema).default([]),
  })
  .loose();
export type AgentDetail = z.infer<typeof agentDetailSchema>;

const restartAnswerSchema = z.object({
  generation: z.number(),
  pid: z.number().nullable().optional(),
  startedAt: z.string().nullable().optional(),
});
export type RestartAnswer = z.infer<typeof restartAnswerSchema>;

const monitorSchema = z
  .object({
    running: z.boolean(),
    startedAt: z.string().nullable().optional(),
    lastRequestAt: z.string().nullable().optional(),
    lastAlertQueryAt: z.string().nullable().optional(),
    idleStopSeconds: z.number(),
    keptAliveByAlerts: z.boolean(),
    stoppedAt: z.string().nullable().optional(),
    stopReason: z.string().optional(),
    history: z
      .object({ path: z.string(), source: z.string(), durable: z.boolean(), note: z.string().optional() })
      .loose(),
    summary: z.string(),
    warning: z.string().optional(),
  })
  .loose();
/** GET monitor: whether the datasource's monitor runs, what keeps it running, where its history is. */
export type MonitorStatus = z.infer<typeof monitorSchema>;

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
      `The datasource answered ${what} in an unexpected shape (${issue.path.join('.') || 'body'}: ${issue.message}). Are the app and its backend the same version?`
    );
  }
  return result.data;
}

const quiet = { showErrorAlert: false, showSuccessAlert: false };

export async function listAgents(uid: string): Promise<AgentListItem[]> {
  try {
    const body = await getBackendSrv().get(resourceUrl(uid, 'agents'), undefined, undefined, quiet);
    return parse(agentsSchema, body, 'GET agents').agents;
  } catch (err) {
    throw toResourceError(err);
  }
}

export async function getAgent(uid: string, name: string): Promise<AgentDetail> {
  try {
    const body = await getBackendSrv().get(resourceUrl(uid, 'agents', name), undefined, undefined, quiet);
    return parse(agentDetailSchema, body, `GET agents/${name}`);
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
export async function getMonitor(uid: string): Promise<MonitorStatus> {
  try {
    const body = await getBackendSrv().get(resourceUrl(uid, 'monitor'), undefined, undefined, quiet);
    return parse(monitorSchema, body, 'GET monitor');
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
