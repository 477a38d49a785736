import { useEffect, useState } from 'react';

import {
  type AgentListItem,
  clustersOf,
  listAgents,
  type ResourceCaller,
  toResourceError,
} from '../../shared/resources';

export interface AgentsState {
  loading: boolean;
  agents: AgentListItem[];
  clusters: string[];
  error?: string;
}

interface Answer {
  from: ResourceCaller;
  agents: AgentListItem[];
  error?: string;
}

/** Why GET agents gave no list, in one line for the editors. */
function problem(err: unknown): string {
  const e = toResourceError(err);
  return e.kind === 'bad_answer' ? e.message : `GET agents failed: ${e.status ? `HTTP ${e.status}: ` : ''}${e.message}`;
}

/** The datasource's configured agents (GET agents), for pickers in the query and variable editors. */
export function useAgents(ds: ResourceCaller): AgentsState {
  const [answer, setAnswer] = useState<Answer>();
  useEffect(() => {
    let current = true;
    listAgents(ds).then(
      (agents) => current && setAnswer({ from: ds, agents }),
      (err) => current && setAnswer({ from: ds, agents: [], error: problem(err) })
    );
    return () => {
      current = false;
    };
  }, [ds]);
  if (answer?.from !== ds) {
    return { loading: true, agents: [], clusters: [] };
  }
  return { loading: false, agents: answer.agents, clusters: clustersOf(answer.agents), error: answer.error };
}
