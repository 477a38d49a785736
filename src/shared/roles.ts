import { config } from '@grafana/runtime';

import { DEFAULT_RESTART_ROLE, SETTING_CHOICES } from './contract.gen';

// Grafana's organisation roles in the order of what they may do (pkg/models Roles, through the
// contract). The backend checks the same order on every restart call; the browser only uses it to
// say up front why a button is disabled.
export const ROLES = SETTING_CHOICES.restartRole;
export type GrafanaRole = (typeof ROLES)[number];

export { DEFAULT_RESTART_ROLE };

export function isGrafanaRole(value: unknown): value is GrafanaRole {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** The signed-in user's organisation role ('' or 'None' when they have none). */
export function currentOrgRole(): string {
  return config.bootData?.user?.orgRole ?? '';
}

export function roleReaches(role: string, minimum: GrafanaRole): boolean {
  const rank = ROLES.indexOf(role as GrafanaRole);
  return rank >= 0 && rank >= ROLES.indexOf(minimum);
}

export interface RestartPermission {
  allowed: boolean;
  minimum: GrafanaRole;
  /** Why the user may not restart, in words for a tooltip. */
  reason?: string;
}

export function restartPermission(role: string, minimum: GrafanaRole): RestartPermission {
  if (roleReaches(role, minimum)) {
    return { allowed: true, minimum };
  }
  const yours = role && role !== 'None' ? `your role is ${role}` : 'you have no role in this organisation';
  return {
    allowed: false,
    minimum,
    reason: `Restarting needs the ${minimum} role or above in this datasource's settings; ${yours}.`,
  };
}
