import { getBackendSrv } from '@grafana/runtime';
import { z } from 'zod';

import { type AlertRule, apiRule } from '../alerting/rules';
import { toResourceError } from '../../shared/resources';
import { parseDurationSeconds } from '../../shared/duration';

// Installing the alert rule template through Grafana's alerting provisioning HTTP API
// (/api/v1/provisioning/alert-rules). Rules installed here stay editable in Grafana's UI
// (X-Disable-Provenance), so a team can tune a threshold; the status then says "changed".

const API = '/api/v1/provisioning/alert-rules';
const quiet = { showErrorAlert: false, showSuccessAlert: false };
const editable = { ...quiet, headers: { 'X-Disable-Provenance': 'true' } };

const folderSchema = z.array(z.object({ uid: z.string(), title: z.string() }).loose());
export type Folder = z.infer<typeof folderSchema>[number];

const installedSchema = z
  .object({
    uid: z.string(),
    title: z.string(),
    condition: z.string(),
    folderUID: z.string(),
    ruleGroup: z.string(),
    for: z.string().optional(),
    noDataState: z.string(),
    execErrState: z.string(),
    labels: z.record(z.string(), z.string()).nullable().optional(),
    annotations: z.record(z.string(), z.string()).nullable().optional(),
    provenance: z.string().optional(),
    data: z.array(
      z
        .object({
          refId: z.string(),
          datasourceUid: z.string(),
          relativeTimeRange: z.object({ from: z.number(), to: z.number() }).optional(),
          model: z.record(z.string(), z.unknown()),
        })
        .loose()
    ),
  })
  .loose();
type Installed = z.infer<typeof installedSchema>;

export type RuleState = 'missing' | 'current' | 'changed' | 'file' | 'error';

export interface RuleStatus {
  uid: string;
  title: string;
  state: RuleState;
  /** What differs, or why the state could not be read. */
  detail?: string;
}

export async function listFolders(): Promise<Folder[]> {
  try {
    return folderSchema.parse(await getBackendSrv().get('/api/folders', { limit: 1000 }, undefined, quiet));
  } catch (err) {
    throw toResourceError(err);
  }
}

export async function createFolder(title: string): Promise<Folder> {
  try {
    return z
      .object({ uid: z.string(), title: z.string() })
      .loose()
      .parse(await getBackendSrv().post('/api/folders', { title }, quiet));
  } catch (err) {
    throw toResourceError(err);
  }
}

/** Every key of `want` is in `have` with the same value (Grafana adds defaults to a query model). */
function contains(have: unknown, want: unknown): boolean {
  if (want === null || typeof want !== 'object') {
    return have === want;
  }
  if (Array.isArray(want)) {
    return Array.isArray(have) && have.length === want.length && want.every((w, i) => contains(have[i], w));
  }
  if (have === null || typeof have !== 'object') {
    return false;
  }
  return Object.entries(want).every(([k, v]) => contains((have as Record<string, unknown>)[k], v));
}

const sameMap = (a: Record<string, string> | null | undefined, b: Record<string, string>) =>
  JSON.stringify(Object.entries(a ?? {}).sort()) === JSON.stringify(Object.entries(b).sort());

/** What differs between the template's rule and the installed one; empty when they agree. */
export function differences(want: AlertRule, folderUid: string, have: Installed): string[] {
  const out: string[] = [];
  const expected = apiRule(want, folderUid);
  for (const key of ['title', 'condition', 'folderUID', 'ruleGroup', 'noDataState', 'execErrState'] as const) {
    if (have[key] !== expected[key]) {
      out.push(key);
    }
  }
  if (parseDurationSeconds(have.for ?? '0s') !== parseDurationSeconds(want.for)) {
    out.push('pending period');
  }
  if (!sameMap(have.labels, want.labels)) {
    out.push('labels');
  }
  if (!sameMap(have.annotations, want.annotations)) {
    out.push('annotations');
  }
  const queriesMatch =
    have.data.length === want.data.length &&
    want.data.every((q, i) => {
      const h = have.data[i];
      return (
        h.refId === q.refId &&
        h.datasourceUid === q.datasourceUid &&
        contains(h.relativeTimeRange ?? { from: 0, to: 0 }, q.relativeTimeRange) &&
        contains(h.model, q.model)
      );
    });
  if (!queriesMatch) {
    out.push('queries');
  }
  return out;
}

export async function ruleStatus(rule: AlertRule, folderUid: string): Promise<RuleStatus> {
  const base = { uid: rule.uid, title: rule.title };
  let body: unknown;
  try {
    body = await getBackendSrv().get(`${API}/${encodeURIComponent(rule.uid)}`, undefined, undefined, quiet);
  } catch (err) {
    const e = toResourceError(err);
    return e.status === 404 ? { ...base, state: 'missing' } : { ...base, state: 'error', detail: e.message };
  }
  const parsed = installedSchema.safeParse(body);
  if (!parsed.success) {
    return { ...base, state: 'error', detail: `unexpected answer from Grafana: ${parsed.error.issues[0].message}` };
  }
  if (parsed.data.provenance === 'file') {
    return { ...base, state: 'file', detail: 'provisioned from files; change it there' };
  }
  const diff = differences(rule, folderUid, parsed.data);
  return diff.length === 0 ? { ...base, state: 'current' } : { ...base, state: 'changed', detail: diff.join(', ') };
}

/** Creates the missing rules and brings changed ones back to the template; file-provisioned ones are left alone. */
export async function installRules(rules: AlertRule[], folderUid: string): Promise<RuleStatus[]> {
  const results: RuleStatus[] = [];
  for (const rule of rules) {
    const status = await ruleStatus(rule, folderUid);
    try {
      if (status.state === 'missing') {
        await getBackendSrv().post(API, apiRule(rule, folderUid), editable);
      } else if (status.state === 'changed') {
        await getBackendSrv().put(`${API}/${encodeURIComponent(rule.uid)}`, apiRule(rule, folderUid), editable);
      } else {
        results.push(status);
        continue;
      }
      results.push({ uid: rule.uid, title: rule.title, state: 'current' });
    } catch (err) {
      results.push({ uid: rule.uid, title: rule.title, state: 'error', detail: toResourceError(err).message });
    }
  }
  return results;
}
