// The keys of kind "systemd": the unit that systemd runs and the agent drives (kinds/systemd.ts).
import { defineKind, nonEmpty } from './schema';

export const systemdKind = defineKind('systemd', { unit: nonEmpty }, { build: (p) => ({ unit: p.unit }) });
