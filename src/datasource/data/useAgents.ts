import { useEffect, useState } from 'react';

import { clustersOf, errorMessage, fetchAgents, type AgentView, type ResourceCaller } from './api';

export interface AgentsState {
  loading: boolean;
  agents: AgentView[];
  clusters: string[];
  error?: string;
}

interface Answer {
  from: ResourceCaller;
  agents: AgentView[];
  error?: string;
}

/** The datasource's configured agents (GET agents), for pickers in the query and variable editors. */
export function useAgents(ds: ResourceCaller): AgentsState {
  const [answer, setAnswer] = useState<Answer>();
  useEffect(() => {
    let current = true;
    fetchAgents(ds).then(
      (agents) => current && setAnswer({ from: ds, agents }),
      (err) => current && setAnswer({ from: ds, agents: [], error: errorMessage(err) })
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
