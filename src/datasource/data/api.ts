import { z } from 'zod';

import { fieldPath } from '../settings';

// The datasource's resources, as the browser reads them. Every answer is checked against the
// shape the frontend relies on: a backend of another version says so instead of breaking a view.

export interface ResourceCaller {
  getResource<T = unknown>(path: string, params?: Record<string, string>): Promise<T>;
}

const agentsAnswer = z.object({
  agents: z.array(
    z.object({
      name: z.string().min(1),
      url: z.string(),
      cluster: z
        .string()
        .nullish()
        .transform((c) => c || undefined),
    })
  ),
});

export type AgentView = z.infer<typeof agentsAnswer>['agents'][number];

export class UnexpectedAnswerError extends Error {
  constructor(resource: string, error: z.ZodError) {
    const first = error.issues[0];
    super(
      `the Vigil backend answered ${resource} in an unexpected shape (${fieldPath(first.path) || 'answer'}: ${first.message}); ` +
        'are the plugin frontend and backend of one version?'
    );
    this.name = 'UnexpectedAnswerError';
  }
}

/** GET agents: the configured agents, without tokens. */
export async function fetchAgents(ds: ResourceCaller): Promise<AgentView[]> {
  let body: unknown;
  try {
    body = await ds.getResource('agents');
  } catch (err) {
    throw new Error(`GET agents failed: ${errorMessage(err)}`);
  }
  const parsed = agentsAnswer.safeParse(body);
  if (!parsed.success) {
    throw new UnexpectedAnswerError('GET agents', parsed.error);
  }
  return parsed.data.agents;
}

export function clustersOf(agents: AgentView[]): string[] {
  return [...new Set(agents.map((a) => a.cluster).filter((c): c is string => Boolean(c)))].sort();
}

const errorBody = z.union([
  z.object({ error: z.object({ message: z.string() }) }).transform((b) => b.error.message),
  z.object({ message: z.string() }).transform((b) => b.message),
]);

/** The reason in an error thrown by Grafana's backend service, or by anything else. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    return err.message;
  }
  const wrapped = z.object({ data: errorBody, status: z.number().optional() }).safeParse(err);
  if (wrapped.success) {
    return wrapped.data.status ? `HTTP ${wrapped.data.status}: ${wrapped.data.data}` : wrapped.data.data;
  }
  const direct = errorBody.safeParse(err);
  return direct.success ? direct.data : String(err);
}
