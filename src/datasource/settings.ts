import { z } from 'zod';

import { AGENT_NAME_PATTERN, DURATION_BOUNDS, SETTING_CHOICES } from '../shared/contract.gen';
import { formatGoDuration, parseDurationSeconds } from '../shared/duration';
import { fieldPath } from '../shared/fieldPath';
import { DEFAULT_POLICY } from './fleet';
import type { PolicySettings, VigilOptions } from './types';

export { parseDurationSeconds } from '../shared/duration';

// Validation of the datasource settings as a person edits them. The backend validates the same
// settings again (pkg/fleet, pkg/models); the field paths and messages here are the backend's,
// without its "jsonData." prefix, so what the editor flags and what Save & test reports read alike:
// both are tested against the cases in pkg/models/testdata/settings.json.

const AGENT_NAME = new RegExp(AGENT_NAME_PATTERN);

/** A value as the backend quotes it (Go's %q of the text). */
const quote = (v: unknown) => JSON.stringify(String(v).trim());
const isSet = (v: unknown) => v !== undefined && v !== null && v !== '';
const mapping = { error: 'must be a mapping of keys to values' };

// A duration (docs/engine.md#durations); never negative.
const duration = z.unknown().superRefine((v, ctx) => {
  const seconds = isSet(v) ? parseDurationSeconds(String(v)) : 0;
  if (seconds === undefined) {
    ctx.addIssue({ code: 'custom', message: `${quote(v)} is not a duration (examples: 10s, 1m30s, 0)` });
  } else if (seconds < 0) {
    ctx.addIssue({ code: 'custom', message: `${formatGoDuration(seconds)} must not be negative` });
  }
});

const number = z.unknown().superRefine((v, ctx) => {
  if (isSet(v) && (typeof v !== 'number' || !Number.isFinite(v))) {
    ctx.addIssue({ code: 'custom', message: `${quote(v)} must be a number` });
  }
});

const wholeNumber = z.unknown().superRefine((v, ctx) => {
  if (isSet(v) && (typeof v !== 'number' || !Number.isInteger(v))) {
    ctx.addIssue({ code: 'custom', message: `${quote(v)} must be a whole number` });
  }
});

const boolean = z.unknown().refine((v) => !isSet(v) || typeof v === 'boolean', {
  error: (i) => `${quote(i.input)} must be true or false`,
});

const oneOf = (values: readonly string[], says = values.join(' or ')) =>
  z.unknown().refine((v) => !isSet(v) || values.includes(String(v).trim()), {
    error: (i) => `${quote(i.input)} must be ${says}`,
  });

const policyShape = {
  budget: z
    .object(
      {
        responseTime: duration.optional(),
        processing: duration.optional(),
        failover: duration.optional(),
        restart: duration.optional(),
        networkInterruption: duration.optional(),
        appErrorRecovery: duration.optional(),
        combine: oneOf(SETTING_CHOICES.combine).optional(),
        mode: oneOf(SETTING_CHOICES.mode).optional(),
      },
      mapping
    )
    .optional(),
  measured: z
    .object(
      {
        percentile: number
          .refine((v) => typeof v !== 'number' || (v > 0 && v <= 100), {
            error: (i) => `${String(i.input)} must be above 0 and at most 100`,
          })
          .optional(),
        floor: duration.optional(),
        ceiling: duration.optional(),
        minSamples: wholeNumber
          .refine((v) => typeof v !== 'number' || v >= 1, { error: (i) => `${String(i.input)} must be at least 1` })
          .optional(),
      },
      mapping
    )
    .optional(),
  autoRestart: z
    .object(
      {
        enabled: boolean.optional(),
        maxRestarts: wholeNumber
          .refine((v) => typeof v !== 'number' || v >= 0, { error: (i) => `${String(i.input)} must not be negative` })
          .optional(),
        window: duration.optional(),
        backoffInitial: duration.optional(),
        backoffMax: duration.optional(),
        stopWhenNotExpected: boolean.optional(),
      },
      mapping
    )
    .optional(),
  rpo: duration.optional(),
};

// Where an agent's tokens belong, after a URL problem that may have put one in the URL.
const TOKENS_GO_TO = '; tokens belong in secureJsonData (readToken, controlToken)';

/**
 * What is wrong with an agent's base URL ('' when nothing is): the backend's rule (pkg/fleet
 * AgentURLProblem), checked against the same cases (pkg/fleet/testdata/agent-urls.json). A URL
 * may carry no user name or password, query string or fragment: Vigil sends none of them to an
 * agent, and the URL is shown to every Viewer. `secretsPlace` marks those problems. The message
 * never repeats the URL.
 */
export function agentUrlProblem(raw: string): { problem: string; secretsPlace: boolean } {
  const notHttp = { problem: 'must be an absolute http or https URL', secretsPlace: false };
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    return notHttp;
  }
  if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.hostname === '') {
    return notHttp;
  }
  // Read from the text, as Go's net/url does: URL drops an empty user name, "?" or "#".
  const authority = raw.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '').split(/[/?#\\]/)[0];
  if (authority.includes('@')) {
    return { problem: 'must not carry a user name or password (user:password@)', secretsPlace: true };
  }
  if (raw.includes('?')) {
    return { problem: 'must not carry a query string (?...): agents take no URL parameters', secretsPlace: true };
  }
  if (raw.includes('#')) {
    return { problem: 'must not carry a fragment (#...)', secretsPlace: true };
  }
  return { problem: '', secretsPlace: false };
}

const agentSchema = z
  .object(
    {
      name: z
        .string()
        .trim()
        .min(1, 'is required')
        .refine((n) => AGENT_NAME.test(n), {
          error: (i) => `${quote(i.input)} must be 1 to 63 letters, digits, '-' or '_'`,
        }),
      // Required unless the agent reports by itself (transport push): checked below.
      url: z
        .string()
        .trim()
        .optional()
        .superRefine((u, ctx) => {
          const { problem, secretsPlace } = u ? agentUrlProblem(u) : { problem: '', secretsPlace: false };
          if (problem) {
            ctx.addIssue({ code: 'custom', message: secretsPlace ? problem + TOKENS_GO_TO : problem });
          }
        }),
      cluster: z.string().optional(),
      // docs/push.md: an agent that reports by itself, and how often.
      transport: z.enum(['poll', 'push']).optional(),
      reportEvery: durationAtLeast(1, (_, s) => `${formatGoDuration(s)} is below the minimum of 1s`),
      ...policyShape,
    },
    mapping
  )
  .superRefine((a, ctx) => {
    if (!a.url && a.transport !== 'push') {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'is required' });
    }
  });

/** A duration setting of at least minSeconds; `below` words that error as the backend does. */
function durationAtLeast(minSeconds: number, below: (v: unknown, seconds: number) => string) {
  return duration.optional().superRefine((v, ctx) => {
    const seconds = isSet(v) ? parseDurationSeconds(String(v)) : undefined;
    if (seconds !== undefined && seconds >= 0 && seconds < minSeconds) {
      ctx.addIssue({ code: 'custom', message: below(v, seconds) });
    }
  });
}

const optionsSchema = z
  .object({
    pollInterval: durationAtLeast(
      DURATION_BOUNDS.pollInterval.minSeconds,
      (_, s) => `${formatGoDuration(s)} is below the minimum of ${DURATION_BOUNDS.pollInterval.min}`
    ),
    defaults: z.object(policyShape, mapping).optional(),
    agents: z.array(agentSchema, { error: 'must be a list' }).optional(),
    restartRole: oneOf(SETTING_CHOICES.restartRole, `one of ${SETTING_CHOICES.restartRole.join(', ')}`).optional(),
    historyPath: z
      .unknown()
      .refine((p) => !isSet(p) || /^(\/|[A-Za-z]:[\\/]|\\\\)/.test(String(p).trim()), {
        error: (i) =>
          `${quote(i.input)} must be an absolute path (or empty for the default under Grafana's data folder)`,
      })
      .optional(),
    idleStop: durationAtLeast(
      DURATION_BOUNDS.idleStop.minSeconds,
      (v) => `${quote(v)} is below the minimum of ${DURATION_BOUNDS.idleStop.min}`
    ),
  })
  .superRefine((options, ctx) => {
    const agents = options.agents ?? [];
    if (agents.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['agents'], message: 'at least one agent is required' });
    }
    const firstUse = new Map<string, number>();
    agents.forEach((a, i) => {
      const name = a.name.trim();
      if (!AGENT_NAME.test(name)) {
        return;
      }
      const first = firstUse.get(name);
      if (first === undefined) {
        firstUse.set(name, i);
      } else {
        ctx.addIssue({
          code: 'custom',
          path: ['agents', i, 'name'],
          message: `${quote(name)} is already used by agents[${first}]`,
        });
      }
    });
    const defaults = options.defaults as PolicySettings | undefined;
    crossChecks(ctx, ['defaults'], defaults, undefined);
    agents.forEach((a, i) => crossChecks(ctx, ['agents', i], defaults, a as PolicySettings));
  });

type Ctx = Parameters<Parameters<z.ZodType['superRefine']>[0]>[1];

// The checks that compare two keys run on the effective values, as the backend's do; for an
// agent they are reported only when one of the two values is its own override, so a bad fleet
// default is named once, under defaults.
function crossChecks(ctx: Ctx, at: Array<string | number>, defaults?: PolicySettings, agent?: PolicySettings) {
  const pairs = [
    ['measured', 'floor', 'ceiling'],
    ['autoRestart', 'backoffInitial', 'backoffMax'],
  ] as const;
  for (const [section, low, high] of pairs) {
    const value = (key: string, from?: PolicySettings) =>
      (from?.[section] as Record<string, unknown> | undefined)?.[key];
    const own = agent ?? defaults;
    if (agent && !isSet(value(low, agent)) && !isSet(value(high, agent))) {
      continue;
    }
    const effective = (key: string) => {
      for (const from of [agent, defaults]) {
        if (from && isSet(value(key, from))) {
          return value(key, from);
        }
      }
      return (DEFAULT_POLICY[section] as Record<string, unknown>)[key];
    };
    const lowSeconds = parseDurationSeconds(String(effective(low)));
    const highSeconds = parseDurationSeconds(String(effective(high)));
    if (own && lowSeconds !== undefined && highSeconds !== undefined && lowSeconds > highSeconds) {
      ctx.addIssue({
        code: 'custom',
        path: [...at, section, low],
        message: `${formatGoDuration(lowSeconds)} is above ${section}.${high} ${formatGoDuration(highSeconds)}`,
      });
    }
  }
}

/** Field path (as in jsonData, e.g. "agents[1].url") to the problem with it. */
export type SettingsErrors = Record<string, string>;

export function validateOptions(options: VigilOptions): SettingsErrors {
  const result = optionsSchema.safeParse(options);
  if (result.success) {
    return {};
  }
  const errors: SettingsErrors = {};
  for (const issue of result.error.issues) {
    errors[fieldPath(issue.path)] ??= issue.message;
  }
  return errors;
}
