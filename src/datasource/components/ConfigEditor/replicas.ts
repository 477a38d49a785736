import { z } from 'zod';

import { fieldPath } from '../../../shared/fieldPath';
import type { VigilOptions } from '../../types';

// The keys of a history shared by several Grafana replicas and of their division of the agents
// (docs/ha.md), as pkg/fleet reads them from jsonData (SharedHistory, Cluster), and their checks,
// which are the backend's (pkg/fleet validateShared) with its field paths and messages.

/** jsonData.history: the history kept in PostgreSQL, shared by every replica. */
export interface SharedHistorySettings {
  /** postgres://user@host:5432/db or host=... dbname=...; its password goes in secureJsonData. */
  postgres?: string;
}

export const FAILURE_DETECTION = ['lan', 'local'] as const;
export type FailureDetection = (typeof FAILURE_DETECTION)[number];

/** jsonData.cluster: the replicas divide the agents among themselves; needs history.postgres. */
export interface ReplicaClusterSettings {
  /** Members to join through, host:port. */
  join?: string[];
  // Each replica's own: they normally come from VIGIL_CLUSTER_BIND, _ADVERTISE and _NAME, which
  // win over these.
  bind?: string;
  advertise?: string;
  name?: string;
  /** lan (the default) or local. */
  profile?: FailureDetection;
}

export type SharedOptions = VigilOptions & { history?: SharedHistorySettings; cluster?: ReplicaClusterSettings };

/** Where the two secrets are kept in secureJsonData; jsonData.history.password is refused. */
export const SHARED_SECRETS = { password: 'history.password', gossipKey: 'cluster.secretKey' } as const;
export type SharedSecretKey = (typeof SHARED_SECRETS)[keyof typeof SHARED_SECRETS];

const CONNECTION_PROBLEM =
  'is not a PostgreSQL connection string: write postgres://user@host:5432/database or host=... dbname=...';
const NEEDS_HISTORY = 'dividing the agents among monitors needs a shared history: set history.postgres too';
const GOSSIP_KEY_PROBLEM = 'must be 16, 24 or 32 bytes in base64 (openssl rand -base64 32)';

/** The members to join as typed: separated by commas or spaces. */
export function parseJoin(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}

/**
 * What is wrong with a host:port address ('' when nothing), split as Go's net.SplitHostPort does:
 * an IPv6 host goes in brackets. A member to join needs a host and a port from 1 to 65535; a
 * replica's own bind or advertise address may leave the host out (":7946") and take port 0.
 */
export function hostPortProblem(address: string, { member = false } = {}): string {
  const quoted = JSON.stringify(address);
  let host: string;
  let port: string;
  if (address.startsWith('[')) {
    const end = address.indexOf(']');
    if (end < 0) {
      return `${quoted} lacks the ']' closing its IPv6 address`;
    }
    if (address[end + 1] !== ':') {
      return `${quoted} has no port`;
    }
    host = address.slice(1, end);
    port = address.slice(end + 2);
  } else {
    const colon = address.lastIndexOf(':');
    if (colon < 0) {
      return `${quoted} has no port`;
    }
    host = address.slice(0, colon);
    port = address.slice(colon + 1);
    if (host.includes(':')) {
      return `${quoted} has too many colons (an IPv6 address goes in brackets: [fd00::1]:7946)`;
    }
  }
  if (/[[\]]/.test(host) || port.includes(']')) {
    return `${quoted} has a misplaced bracket`;
  }
  if (member && host === '') {
    return `${quoted} has no host`;
  }
  const low = member ? 1 : 0;
  const n = /^\d{1,5}$/.test(port) ? Number(port) : NaN;
  if (!(n >= low && n <= 65535)) {
    return `${quoted}: the port must be a number from ${low} to 65535`;
  }
  return '';
}

/** Whether a gossip key is what memberlist takes: 16, 24 or 32 bytes, in standard base64 with padding. */
export function gossipKeyProblem(key: string): string {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(key)) {
    return GOSSIP_KEY_PROBLEM;
  }
  const bytes = (key.length / 4) * 3 - (key.length - key.replace(/=+$/, '').length);
  return [16, 24, 32].includes(bytes) ? '' : GOSSIP_KEY_PROBLEM;
}

/**
 * Whether a connection string carries a password: in its user information (user:password@host),
 * as a URL parameter (?password=) or as a key=value setting (password=). Grafana keeps jsonData in
 * clear and sends it to every browser that opens these settings.
 */
export function connectionHasPassword(connection: string): boolean {
  const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(connection.trim())?.[1] ?? '';
  const at = authority.lastIndexOf('@');
  const user = at < 0 ? '' : authority.slice(0, at);
  if (user.includes(':') && user.slice(user.indexOf(':') + 1) !== '') {
    return true;
  }
  return /(^|[\s?&])password\s*=\s*[^\s&]/i.test(connection);
}

const address = (member: boolean) =>
  z.unknown().superRefine((v, ctx) => {
    const problem = typeof v === 'string' ? hostPortProblem(v.trim(), { member }) : 'is not text';
    if (problem) {
      ctx.addIssue({ code: 'custom', message: `must be host:port: ${problem}` });
    }
  });

const mapping = { error: 'must be a mapping of keys to values' };

const sharedSchema = z
  .object({
    history: z
      .object(
        {
          postgres: z
            .unknown()
            .refine((v) => typeof v !== 'string' || !v.trim() || v.includes('://') || v.includes('='), {
              error: CONNECTION_PROBLEM,
            })
            .optional(),
        },
        mapping
      )
      .optional(),
    cluster: z
      .object(
        {
          join: z.array(address(true), { error: 'must be a list' }).optional(),
          bind: address(false).optional(),
          advertise: address(false).optional(),
          profile: z
            .unknown()
            .refine((v) => v === undefined || v === '' || FAILURE_DETECTION.includes(v as FailureDetection), {
              error: 'must be "lan" or "local"',
            })
            .optional(),
        },
        mapping
      )
      .nullable()
      .optional(),
  })
  .superRefine((o, ctx) => {
    const postgres = o.history?.postgres;
    if (o.cluster && !(typeof postgres === 'string' && postgres.trim())) {
      ctx.addIssue({ code: 'custom', path: ['cluster'], message: NEEDS_HISTORY });
    }
  });

/**
 * The problems of the shared history and cluster settings, by field path. A gossip key typed in
 * this session is checked too (a stored one cannot be read back); the message never repeats it.
 */
export function validateShared(
  jsonData: SharedOptions,
  secureJsonData: Record<string, string | undefined>
): Record<string, string> {
  const errors: Record<string, string> = {};
  const result = sharedSchema.safeParse(jsonData);
  for (const issue of result.success ? [] : result.error.issues) {
    errors[fieldPath(issue.path)] ??= issue.message;
  }
  const key = secureJsonData[SHARED_SECRETS.gossipKey];
  if (jsonData.cluster && key) {
    const problem = gossipKeyProblem(key);
    if (problem) {
      errors[SHARED_SECRETS.gossipKey] = problem;
    }
  }
  return errors;
}

// Edits of jsonData: each returns new settings in which an emptied key is gone, never written empty.

function put<K extends 'history' | 'cluster'>(
  jsonData: SharedOptions,
  key: K,
  value: SharedOptions[K] | undefined
): SharedOptions {
  const next = { ...jsonData };
  if (value === undefined) {
    delete next[key];
  } else {
    next[key] = value;
  }
  return next;
}

/**
 * The connection string as typed (the backend trims it; trimming here would eat the spaces of
 * host=... dbname=... as they are typed). Cleared, history goes.
 */
export function setConnection(jsonData: SharedOptions, text: string): SharedOptions {
  const rest: SharedHistorySettings = { ...jsonData.history };
  delete rest.postgres;
  if (text.trim()) {
    return put(jsonData, 'history', { ...rest, postgres: text });
  }
  return put(jsonData, 'history', Object.keys(rest).length ? rest : undefined);
}

/** Divides the agents (cluster, at least {}) with the given settings, or stops dividing them. */
export function setDivided(jsonData: SharedOptions, on: boolean, settings: ReplicaClusterSettings = {}): SharedOptions {
  return put(jsonData, 'cluster', on ? { ...settings } : undefined);
}

export function setClusterKey<K extends keyof ReplicaClusterSettings>(
  jsonData: SharedOptions,
  key: K,
  value: ReplicaClusterSettings[K] | undefined
): SharedOptions {
  const cluster: ReplicaClusterSettings = { ...jsonData.cluster };
  if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) {
    delete cluster[key];
  } else {
    cluster[key] = value;
  }
  return put(jsonData, 'cluster', cluster);
}
