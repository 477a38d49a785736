import type { DataSourceSettings } from '@grafana/data';

import { agentSecretKey, type TokenKind, type VigilOptions, type VigilSecureOptions } from '../../types';
import type { SharedSecretKey } from './replicas';

type Settings = DataSourceSettings<VigilOptions, VigilSecureOptions>;
type SecretKey = (keyof VigilSecureOptions & string) | SharedSecretKey;

const KINDS: TokenKind[] = ['readToken', 'controlToken', 'reportToken'];

export function setSecret(options: Settings, key: SecretKey, value: string): Settings {
  return { ...options, secureJsonData: { ...(options.secureJsonData ?? {}), [key]: value } };
}

// Grafana cannot delete a stored secret; resetting stores an empty one, which the backend reads as
// "not set" (an agent then uses the datasource-wide token; PostgreSQL, the connection string's
// password or none; the gossip, no encryption).
export function resetSecret(options: Settings, key: SecretKey): Settings {
  return {
    ...options,
    secureJsonFields: { ...options.secureJsonFields, [key]: false },
    secureJsonData: { ...(options.secureJsonData ?? {}), [key]: '' },
  };
}

/**
 * Per-agent tokens are stored under the agent's name. When the name changes, a token typed but not
 * saved moves along; a stored one cannot be read back, so it is reset and must be entered again
 * (the token's tooltip says so).
 */
export function moveAgentSecrets(options: Settings, from: string, to: string): Settings {
  if (from === to) {
    return options;
  }
  let next = options;
  for (const kind of KINDS) {
    const oldKey = agentSecretKey(from, kind);
    const typed = next.secureJsonData?.[oldKey];
    if (from && next.secureJsonFields?.[oldKey]) {
      next = resetSecret(next, oldKey);
    } else if (typed !== undefined) {
      // Never saved: nothing to clear on the server, so the key simply goes.
      const rest = { ...next.secureJsonData };
      delete rest[oldKey];
      next = { ...next, secureJsonData: rest };
    }
    if (to && typed) {
      next = setSecret(next, agentSecretKey(to, kind), typed);
    }
  }
  return next;
}

export function dropAgentSecrets(options: Settings, name: string): Settings {
  return moveAgentSecrets(options, name, '');
}
