import React, { useRef, useState } from 'react';
import {
  Alert,
  FieldSet,
  InlineField,
  Input,
  RadioButtonGroup,
  SecretInput,
  Stack,
  Switch,
  Text,
  TextLink,
} from '@grafana/ui';

import { testIds } from '../testIds';
import { TextField } from './fields';
import {
  connectionHasPassword,
  parseJoin,
  type FailureDetection,
  type ReplicaClusterSettings,
  setClusterKey,
  setConnection,
  setDivided,
  SHARED_SECRETS,
  type SharedOptions,
  type SharedSecretKey,
} from './replicas';

// The section's labels are longer than the rest of the page's.
const LABEL_WIDTH = 34;
const HA_DOCS = 'https://github.com/vigil-cdp/vigil/blob/main/docs/ha.md';

const PROFILE_OPTIONS: Array<{ label: string; value: FailureDetection; description: string }> = [
  { label: 'lan', value: 'lan', description: "A crashed replica's agents move to the others after about 6 s" },
  { label: 'local', value: 'local', description: 'For replicas on one host: about 5 s' },
];

interface Props {
  jsonData: SharedOptions;
  errors: Record<string, string>;
  secureJsonFields: Record<string, boolean>;
  secureJsonData: Record<string, string | undefined>;
  onJsonData: (next: SharedOptions) => void;
  onSecret: (key: SharedSecretKey, value: string) => void;
  onResetSecret: (key: SharedSecretKey) => void;
}

/** history.postgres and cluster of jsonData, with their secrets (docs/ha.md). */
export function SharedHistorySection({
  jsonData,
  errors,
  secureJsonFields,
  secureJsonData,
  onJsonData,
  onSecret,
  onResetSecret,
}: Props) {
  const connection = jsonData.history?.postgres ?? '';
  const connected = connection.trim() !== '';
  const divided = Boolean(jsonData.cluster);
  // Switching the division off and on again brings back the members and profile set before.
  const remembered = useRef<ReplicaClusterSettings>(jsonData.cluster ?? {});
  const divide = (on: boolean) => {
    if (!on && jsonData.cluster) {
      remembered.current = jsonData.cluster;
    }
    onJsonData(setDivided(jsonData, on, remembered.current));
  };

  return (
    <FieldSet label="Shared history and replicas">
      <Stack direction="column" gap={1}>
        <Text color="secondary">
          With several Grafana replicas, keep one history in PostgreSQL for all of them and, if you like, divide the
          agents among them so that each agent is polled by one replica (
          <TextLink href={HA_DOCS} external inline>
            docs/ha.md
          </TextLink>
          ). Every replica has these settings; each one&apos;s own address comes from its environment:
          VIGIL_CLUSTER_ADVERTISE (and VIGIL_CLUSTER_BIND, VIGIL_CLUSTER_NAME), passed to the plugin by
          grafana.ini&apos;s [plugins] forward_host_env_vars. Leave this empty with a single Grafana.
        </Text>
        <div>
          <TextField
            label="PostgreSQL connection"
            path="history.postgres"
            errors={errors}
            value={connection}
            width={48}
            labelWidth={LABEL_WIDTH}
            placeholder="postgres://vigil@db.example:5432/vigil"
            tooltip="Any libpq connection string: postgres://user@host:5432/database?sslmode=verify-full or host=... dbname=... Empty: each Grafana keeps its own history on its disk."
            testId={testIds.configEditor.historyPostgres}
            onChange={(v) => onJsonData(setConnection(jsonData, v))}
          />
          {connectionHasPassword(connection) && (
            <Alert
              severity="warning"
              title="The connection string holds a password"
              data-testid={testIds.configEditor.historyPasswordInConnection}
            >
              Grafana keeps the connection string in clear and shows it to whoever opens these settings. Take the
              password out of it and enter it in the Password field, which Grafana encrypts.
            </Alert>
          )}
          <InlineField
            label="Password"
            labelWidth={LABEL_WIDTH}
            tooltip="PostgreSQL's password, stored as history.password in secureJsonData: Grafana encrypts it and sends it only to its server. It replaces a password in the connection string."
          >
            <SecretInput
              width={40}
              isConfigured={Boolean(secureJsonFields[SHARED_SECRETS.password])}
              value={secureJsonData[SHARED_SECRETS.password] ?? ''}
              placeholder="the PostgreSQL role's password"
              onChange={(e) => onSecret(SHARED_SECRETS.password, e.currentTarget.value)}
              onReset={() => onResetSecret(SHARED_SECRETS.password)}
              data-testid={testIds.configEditor.historyPassword}
            />
          </InlineField>
          <InlineField
            label="Divide the agents among replicas"
            labelWidth={LABEL_WIDTH}
            // Never stuck on: a division left without its shared history can still be switched off.
            disabled={!connected && !divided}
            tooltip={
              connected
                ? 'Each agent is polled by one replica; when a replica stops, the others take its agents over from the shared history.'
                : 'Needs the PostgreSQL connection: the replicas hand agents over through the shared history.'
            }
            invalid={Boolean(errors.cluster)}
            error={errors.cluster && `cluster: ${errors.cluster}`}
          >
            <Switch
              value={divided}
              onChange={(e) => divide(e.currentTarget.checked)}
              data-testid={testIds.configEditor.clusterDivide}
            />
          </InlineField>
          {divided && (
            <ClusterFields
              jsonData={jsonData}
              errors={errors}
              secureJsonFields={secureJsonFields}
              secureJsonData={secureJsonData}
              onJsonData={onJsonData}
              onSecret={onSecret}
              onResetSecret={onResetSecret}
            />
          )}
        </div>
      </Stack>
    </FieldSet>
  );
}

function ClusterFields({
  jsonData,
  errors,
  secureJsonFields,
  secureJsonData,
  onJsonData,
  onSecret,
  onResetSecret,
}: Props) {
  const cluster = jsonData.cluster ?? {};
  // The list as typed, so that a separator being typed stays; jsonData holds the parsed list.
  const [joinText, setJoinText] = useState((cluster.join ?? []).join(', '));
  const joinErrors = Object.entries(errors).filter(([path]) => path.startsWith('cluster.join'));
  const keyTyped = Boolean(secureJsonData[SHARED_SECRETS.gossipKey]);
  const keyStored = Boolean(secureJsonFields[SHARED_SECRETS.gossipKey]);
  const own = (['bind', 'advertise', 'name'] as const).filter((k) => cluster[k]);

  return (
    <>
      <InlineField
        label="Members to join"
        labelWidth={LABEL_WIDTH}
        tooltip="Replicas to join through, host:port, separated by commas or spaces; listing every replica on every replica is fine. The port is 7946 unless VIGIL_CLUSTER_BIND says otherwise."
        invalid={joinErrors.length > 0}
        error={
          joinErrors.length > 0 &&
          joinErrors.map(([path, message]) => (
            <div key={path}>
              {path}: {message}
            </div>
          ))
        }
      >
        <Input
          width={60}
          value={joinText}
          placeholder="grafana-1.example:7946, grafana-2.example:7946"
          onChange={(e) => {
            setJoinText(e.currentTarget.value);
            onJsonData(setClusterKey(jsonData, 'join', parseJoin(e.currentTarget.value)));
          }}
          onBlur={() => setJoinText((cluster.join ?? []).join(', '))}
          data-testid={testIds.configEditor.clusterJoin}
          aria-label="Members to join"
        />
      </InlineField>
      <div data-testid={testIds.configEditor.clusterProfile}>
        <InlineField
          label="Failure detection"
          labelWidth={LABEL_WIDTH}
          tooltip="How soon the replicas notice that one of them crashed and take its agents over: lan (the default), about 6 s; local, for replicas on one host, about 5 s."
          invalid={Boolean(errors['cluster.profile'])}
          error={errors['cluster.profile'] && `cluster.profile: ${errors['cluster.profile']}`}
        >
          <RadioButtonGroup
            options={PROFILE_OPTIONS}
            value={cluster.profile ?? (errors['cluster.profile'] ? undefined : 'lan')}
            onChange={(v) => onJsonData(setClusterKey(jsonData, 'profile', v))}
          />
        </InlineField>
      </div>
      <Stack gap={1} alignItems="flex-start">
        <InlineField
          label="Gossip key"
          labelWidth={LABEL_WIDTH}
          tooltip="Encrypts and authenticates what the replicas tell each other: 16, 24 or 32 bytes in base64 (openssl rand -base64 32), stored as cluster.secretKey in secureJsonData."
          invalid={Boolean(errors[SHARED_SECRETS.gossipKey])}
          error={errors[SHARED_SECRETS.gossipKey] && `${SHARED_SECRETS.gossipKey}: ${errors[SHARED_SECRETS.gossipKey]}`}
        >
          <SecretInput
            width={48}
            isConfigured={keyStored}
            value={secureJsonData[SHARED_SECRETS.gossipKey] ?? ''}
            placeholder="openssl rand -base64 32"
            onChange={(e) => onSecret(SHARED_SECRETS.gossipKey, e.currentTarget.value)}
            onReset={() => onResetSecret(SHARED_SECRETS.gossipKey)}
            data-testid={testIds.configEditor.clusterSecretKey}
          />
        </InlineField>
        {!keyTyped && !keyStored && (
          <Text color="warning" variant="bodySmall">
            Without a key, anyone who reaches the gossip port can join and take agents over.
          </Text>
        )}
      </Stack>
      {own.length > 0 && (
        <Text color="secondary" variant="bodySmall">
          These settings also set {own.map((k) => `cluster.${k} ${cluster[k]}`).join(', ')} for every replica; a
          replica&apos;s VIGIL_CLUSTER_BIND, VIGIL_CLUSTER_ADVERTISE and VIGIL_CLUSTER_NAME win over them.
        </Text>
      )}
    </>
  );
}
