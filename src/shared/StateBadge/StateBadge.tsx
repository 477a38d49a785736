import React from 'react';
import { Badge, type BadgeColor } from '@grafana/ui';

import { stateByCode, stateByName } from '../states';

// The state colours of docs/engine.md mapped onto the badge colours @grafana/ui offers.
const BADGE: Record<string, BadgeColor> = {
  green: 'green',
  blue: 'blue',
  yellow: 'orange',
  orange: 'orange',
  purple: 'purple',
  red: 'red',
  text: 'darkgrey',
};

export function StateBadge({ state, code }: { state?: string; code?: number }) {
  const known = code !== undefined ? stateByCode(code) : stateByName(state ?? '');
  return <Badge text={state || known.name} color={BADGE[known.color]} tooltip={known.meaning} />;
}
