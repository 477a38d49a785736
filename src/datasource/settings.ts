import { z } from 'zod';

import type { AgentSettings, VigilOptions } from './types';

// Validation of the datasource settings as a person edits them. The backend validates the same
// settings again (pkg/models); these messages name the same fields.
const DURATION = /^(\d+(\.\d+)?(ms|s|m|h))+$/;

export function parseDurationSeconds(value: string): number | undefined {
  if (!DURATION.test(value)) {
    return undefined;
  }
  const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const [, n, , u] of value.matchAll(/(\d+(\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(n) * unit[u];
  }
  return total;
}

const agentSchema = z.object({
  name: z.string().trim().min(1, 'is required'),
  url: z
    .string()
    .trim()
    .min(1, 'is required')
    .refine((u) => {
      try {
        const parsed = new URL(u);
        return parsed.protocol === 'http:' || parsed.protocol === 'https:';
      } catch {
        return false;
      }
    }, 'must be an absolute http or https URL'),
  cluster: z.string().optional(),
});

const optionsSchema = z.object({
  pollInterval: z
    .string()
    .optional()
    .refine(
      (v) => v === undefined || v === '' || (parseDurationSeconds(v) ?? 0) >= 1,
      'must be a duration of at least 1s, e.g. 10s'
    ),
  agents: z
    .array(agentSchema)
    .optional()
    .superRefine((agents, ctx) => {
      const seen = new Set<string>();
      (agents ?? []).forEach((a: AgentSettings, i: number) => {
        if (a.name && seen.has(a.name)) {
          ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicates the name "${a.name}"` });
        }
        seen.add(a.name);
      });
    }),
});

/** Field path (as in jsonData, e.g. "agents[1].url") to the problem with it. */
export type SettingsErrors = Record<string, string>;

export function validateOptions(options: VigilOptions): SettingsErrors {
  const result = optionsSchema.safeParse(options);
  if (result.success) {
    return {};
  }
  const errors: SettingsErrors = {};
  for (const issue of result.error.issues) {
    const key = issue.path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('')
      .replace(/^\./, '');
    errors[key] ??= issue.message;
  }
  return errors;
}
