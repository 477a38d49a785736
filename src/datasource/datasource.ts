import type {
  CoreApp,
  DataSourceInstanceSettings,
  LegacyMetricFindQueryOptions,
  MetricFindValue,
  ScopedVars,
} from '@grafana/data';
import { DataSourceWithBackend } from '@grafana/runtime';
import { of } from 'rxjs';

import { eventsToAnnotations } from './annotations';
import { AnnotationQueryEditor } from './components/QueryEditor/AnnotationQueryEditor';
import { expandValue, expandValues } from './templating';
import { ALERTING_DEFAULT_QUERY, DEFAULT_QUERY, isAlertingApp, type VigilOptions, type VigilQuery } from './types';
import { normalizeVariableQuery, variableValues, VigilVariableSupport } from './variables';

export class DataSource extends DataSourceWithBackend<VigilQuery, VigilOptions> {
  constructor(instanceSettings: DataSourceInstanceSettings<VigilOptions>) {
    super(instanceSettings);
    this.variables = new VigilVariableSupport(this);
    this.annotations = {
      QueryEditor: AnnotationQueryEditor,
      getDefaultQuery: () => ({ queryType: 'events', agents: [] }),
      prepareQuery: (anno) => ({ refId: 'Anno', agents: [], ...anno.target, queryType: 'events' }),
      processEvents: (_anno, frames) => of(eventsToAnnotations(frames)),
    };
  }

  /** Grafana's alert rule editor asks for CoreApp.UnifiedAlerting (or CloudAlerting). */
  getDefaultQuery(app: CoreApp): Partial<VigilQuery> {
    return isAlertingApp(app) ? ALERTING_DEFAULT_QUERY : DEFAULT_QUERY;
  }

  applyTemplateVariables(query: VigilQuery, scopedVars: ScopedVars): VigilQuery {
    const states = expandValues(query.states, scopedVars);
    const cluster = expandValue(query.cluster, scopedVars);
    const expanded: VigilQuery = { ...query, agents: expandValues(query.agents, scopedVars) };
    delete expanded.cluster;
    delete expanded.states;
    return {
      ...expanded,
      ...(cluster ? { cluster } : {}),
      ...(states.length ? { states } : {}),
    };
  }

  /** Variable values for callers that still use the text query API: "agents", "clusters", "agents(<cluster>)". */
  metricFindQuery(query: unknown, options?: LegacyMetricFindQueryOptions): Promise<MetricFindValue[]> {
    return variableValues(this, normalizeVariableQuery(query), options?.scopedVars);
  }
}
