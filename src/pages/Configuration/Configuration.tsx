import React, { useMemo, useState } from 'react';
import type { DataSourceInstanceSettings } from '@grafana/data';
import { PluginPage } from '@grafana/runtime';
import {
  Alert,
  Badge,
  type BadgeColor,
  Button,
  Collapse,
  Combobox,
  type ComboboxOption,
  Field,
  InteractiveTable,
  LinkButton,
  Stack,
  Text,
} from '@grafana/ui';

import {
  type AlertRule,
  buildRuleGroup,
  DEFAULT_TEMPLATE_OPTIONS,
  RULE_FOLDER,
  type RuleTemplateOptions,
} from '../alerting/rules';
import { vigilDatasources } from '../../shared/data/datasource';
import { useAsyncValue } from '../data/useAsyncValue';
import { currentOrgRole, roleReaches } from '../../shared/roles';
import { testIds } from '../../shared/testIds';
import { parseDurationSeconds } from '../../shared/duration';
import { type AppSettings, chosenDatasource, saveAppSettings } from '../appSettings';
import { createFolder, type Folder, installRules, listFolders, type RuleStatus, ruleStatus } from './install';
import { MonitorStatus } from './MonitorStatus';

interface DatasourceJson {
  pollInterval?: string;
  rpo?: string;
  defaults?: { rpo?: string; budget?: { restart?: string } };
}

/** The template's thresholds from the datasource's own settings, so rules and engine agree. */
export function templateOptions(settings: DataSourceInstanceSettings): RuleTemplateOptions {
  const json = (settings.jsonData ?? {}) as DatasourceJson;
  const secs = (text: string | undefined, fallback: number) => {
    const v = text ? parseDurationSeconds(text) : undefined;
    return v !== undefined && v > 0 ? v : fallback;
  };
  return {
    datasourceUid: settings.uid,
    pollIntervalSeconds: secs(json.pollInterval, DEFAULT_TEMPLATE_OPTIONS.pollIntervalSeconds),
    restartAllowanceSeconds: secs(json.defaults?.budget?.restart, DEFAULT_TEMPLATE_OPTIONS.restartAllowanceSeconds),
    rpoSeconds: secs(json.defaults?.rpo ?? json.rpo, DEFAULT_TEMPLATE_OPTIONS.rpoSeconds),
  };
}

const STATE_BADGE: Record<RuleStatus['state'], [string, BadgeColor]> = {
  missing: ['not installed', 'orange'],
  current: ['installed, up to date', 'green'],
  changed: ['installed, differs from the template', 'purple'],
  file: ['provisioned from files', 'blue'],
  error: ['could not read', 'red'],
};

interface PreviewLine {
  id: string;
  rule: AlertRule;
  status?: RuleStatus;
}
type Cell = { row: { original: PreviewLine } };

export default function Configuration({ settings }: { settings: AppSettings }) {
  const datasources = vigilDatasources();
  const [dsUid, setDsUid] = useState(() => chosenDatasource(settings)?.uid);
  const datasource = datasources.find((d) => d.uid === dsUid);
  const [saved, setSaved] = useState<string>();
  const folders = useAsyncValue(listFolders, []);
  const [folder, setFolder] = useState<{ uid?: string; title: string }>();
  const [previewing, setPreviewing] = useState(false);
  const [showJson, setShowJson] = useState(false);
  const [installing, setInstalling] = useState(false);
  const [installError, setInstallError] = useState<string>();

  // Keyed by the uid: a new options object on every render would re-read the rule status forever.
  const options = useMemo(
    () => (datasource ? templateOptions(datasource) : undefined),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [dsUid, datasources.length]
  );
  const group = useMemo(() => (options ? buildRuleGroup(options) : undefined), [options]);
  const folderUid = folder?.uid;
  const statuses = useAsyncValue<RuleStatus[]>(
    () =>
      group && folderUid && previewing
        ? Promise.all(group.rules.map((r) => ruleStatus(r, folderUid)))
        : Promise.resolve([]),
    [group, folderUid, previewing]
  );
  const isAdmin = roleReaches(currentOrgRole(), 'Admin');

  const saveChoice = async () => {
    try {
      await saveAppSettings({ ...settings, datasourceUid: dsUid });
      setSaved('Saved: the app pages show this datasource.');
    } catch (err) {
      setSaved(`Could not save: ${err instanceof Error ? err.message : String((err as { status?: number }).status)}`);
    }
  };

  const install = async () => {
    if (!group || !folder) {
      return;
    }
    setInstalling(true);
    setInstallError(undefined);
    try {
      let uid = folderUid;
      if (!uid) {
        const created = await createFolder(folder.title);
        uid = created.uid;
        setFolder({ uid: created.uid, title: created.title });
        folders.reload();
      }
      const results = await installRules(group.rules, uid);
      const failed = results.filter((r) => r.state === 'error');
      if (failed.length > 0) {
        setInstallError(failed.map((r) => `${r.title}: ${r.detail}`).join('; '));
      }
      statuses.reload();
    } catch (err) {
      setInstallError(err instanceof Error ? err.message : String(err));
    } finally {
      setInstalling(false);
    }
  };

  const folderOptions: Array<ComboboxOption<string>> = (folders.value ?? []).map((f: Folder) => ({
    value: f.uid,
    label: f.title,
  }));
  const chooseFolder = (option: ComboboxOption<string> | null) => {
    // A typed name that matches an existing folder means that folder, not a new one.
    const known = (folders.value ?? []).find((f) => f.uid === option?.value || f.title === option?.value);
    setFolder(known ? { uid: known.uid, title: known.title } : option ? { title: option.value } : undefined);
  };
  const lines: PreviewLine[] = (group?.rules ?? []).map((rule) => ({
    id: rule.uid,
    rule,
    status: statuses.value?.find((s) => s.uid === rule.uid),
  }));
  const columns = [
    { id: 'title', header: 'Rule', cell: ({ row }: Cell) => row.original.rule.title },
    { id: 'severity', header: 'Severity', cell: ({ row }: Cell) => row.original.rule.labels.severity },
    { id: 'for', header: 'Pending', cell: ({ row }: Cell) => row.original.rule.for },
    {
      id: 'states',
      header: 'No data / error',
      cell: ({ row }: Cell) => `${row.original.rule.noDataState} / ${row.original.rule.execErrState}`,
    },
    {
      id: 'status',
      header: 'Status',
      cell: ({ row }: Cell) => {
        const s = row.original.status;
        if (!folderUid) {
          return <Text color="secondary">new folder: not installed</Text>;
        }
        if (!s) {
          return <Text color="secondary">checking…</Text>;
        }
        const [text, color] = STATE_BADGE[s.state];
        return <Badge color={color} text={s.detail ? `${text}: ${s.detail}` : text} />;
      },
    },
  ];
  const toInstall = (statuses.value ?? []).filter((s) => s.state === 'missing' || s.state === 'changed').length;
  const allCurrent = folderUid && statuses.value?.length && toInstall === 0;

  return (
    <PluginPage>
      <div data-testid={testIds.config.page}>
        <Stack direction="column" gap={3}>
          <Stack direction="column" gap={1}>
            <Text element="h3">Datasource</Text>
            {datasources.length === 0 ? (
              <Alert severity="info" title="No Vigil CDP datasource yet">
                Create one with your agents and their tokens; the app pages and alert rules use it.
              </Alert>
            ) : (
              <Field label="Vigil CDP datasource" description="The one the app pages show and the alert rules query.">
                <div data-testid={testIds.config.datasource}>
                  <Combobox
                    options={datasources.map((d): ComboboxOption<string> => ({ value: d.uid, label: d.name }))}
                    value={dsUid ?? null}
                    onChange={(o) => {
                      setDsUid(o?.value);
                      setSaved(undefined);
                    }}
                    width={40}
                  />
                </div>
              </Field>
            )}
            <Stack direction="row" gap={1} alignItems="center">
              <Button variant="secondary" onClick={saveChoice} disabled={!dsUid}>
                Use for the app pages
              </Button>
              <LinkButton variant="secondary" icon="plus" href="/connections/datasources/new">
                Add a Vigil CDP datasource
              </LinkButton>
              {saved && <Text color={saved.startsWith('Saved') ? 'success' : 'error'}>{saved}</Text>}
            </Stack>
          </Stack>

          {dsUid && <MonitorStatus uid={dsUid} isAdmin={isAdmin} />}

          <Stack direction="column" gap={1}>
            <Text element="h3">Alert rules</Text>
            <Text color="secondary">
              Five rules in the group &quot;{group?.name ?? 'Vigil CDP'}&quot;, evaluated every{' '}
              {group?.interval ?? '10s'} against this datasource&apos;s metrics query
              {options
                ? ` (poll interval ${options.pollIntervalSeconds} s, restart allowance ${options.restartAllowanceSeconds} s, RPO objective ${options.rpoSeconds} s, from its settings)`
                : ''}
              . docs/alerting.md says what each means.
            </Text>
            <Text color="secondary">
              Installing them is not optional: besides alerting, their evaluations are what keep the monitor polling and
              restarting CDP after Grafana restarts, with no dashboard open.
            </Text>
            {!isAdmin && (
              <Alert severity="info" title="Installing needs the Admin role">
                Grafana&apos;s alerting provisioning API is open to organisation admins; you can still preview.
              </Alert>
            )}
            <Field label="Folder" description={`Existing folder, or type a new name (e.g. ${RULE_FOLDER}).`}>
              <div data-testid={testIds.config.folder}>
                <Combobox
                  options={folderOptions}
                  value={folder?.uid ?? folder?.title ?? null}
                  onChange={chooseFolder}
                  createCustomValue
                  loading={folders.loading}
                  placeholder={folders.error ? `Folders unavailable: ${folders.error.message}` : 'Choose a folder'}
                  width={40}
                />
              </div>
            </Field>
            <Stack direction="row" gap={1}>
              <Button
                variant="secondary"
                icon="eye"
                onClick={() => setPreviewing(true)}
                disabled={!group || !folder}
                data-testid={testIds.config.preview}
              >
                Preview rules
              </Button>
              <Button
                icon="bell"
                onClick={install}
                disabled={!previewing || !folder || installing || !isAdmin || Boolean(allCurrent)}
                data-testid={testIds.config.install}
              >
                {installing ? 'Installing…' : folderUid && toInstall ? `Install ${toInstall} rules` : 'Install rules'}
              </Button>
            </Stack>
            {installError && (
              <Alert severity="error" title="Some rules were not installed">
                {installError}
              </Alert>
            )}
            {previewing && group && (
              <Stack direction="column" gap={1}>
                <div data-testid={testIds.config.status}>
                  {statuses.error ? (
                    <Alert severity="error" title="Could not read the installed rules">
                      {statuses.error.message}
                    </Alert>
                  ) : allCurrent ? (
                    <Text color="success">All {lines.length} rules are installed and up to date.</Text>
                  ) : null}
                  <InteractiveTable columns={columns} data={lines} getRowId={(l: PreviewLine) => l.id} />
                </div>
                <Collapse
                  label="The rules as Grafana receives them"
                  isOpen={showJson}
                  onToggle={() => setShowJson(!showJson)}
                >
                  <pre>{JSON.stringify(group.rules, null, 2)}</pre>
                </Collapse>
              </Stack>
            )}
          </Stack>
        </Stack>
      </div>
    </PluginPage>
  );
}
