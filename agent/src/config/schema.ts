// The pieces of the configuration schema that its parts share: durations, non-empty strings,
// argument vectors, the keys every process takes, and defineKind, with which each kind of
// process (config/command.ts, config/systemd.ts, ...) declares its own keys and checks.
import { z } from 'zod';
import { parseDuration } from '../duration';
import type { ProcessConfig } from '../config';

export const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `invalid duration ${JSON.stringify(v)} (use e.g. 10s, 500ms, 2m, 7d, 0)` });
    return z.NEVER;
  }
  return ms;
});

export const nonEmpty = z.string().min(1, { message: 'must not be empty' });
export const argv = z.array(nonEmpty).min(1, { message: 'must have at least one element' });

export const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGKILL', 'SIGUSR1', 'SIGUSR2'] as const;
export type StopSignal = (typeof SIGNALS)[number];

/** A process's name: the first key of every process, before its kind. */
export const processName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, {
  message: 'must be 1-64 characters of letters, digits, ".", "_" or "-", starting with a letter or digit',
});

/** The keys every process takes whatever its kind, after the kind's own keys. */
export const processCommon = {
  startOnBoot: z.boolean().default(true),
  runOn: z.enum(['active', 'always']).default('active'),
  stopSignal: z.enum(SIGNALS).default('SIGTERM'),
  stopTimeout: duration.default(10_000),
  autoRestart: z.boolean().default(false),
};

type CommonKey = 'name' | 'kind' | 'startOnBoot' | 'runOn' | 'stopSignal' | 'stopTimeoutMs' | 'autoRestart';

/** A kind's part of ProcessConfig: its own keys, as the supervisors read them. */
export type KindFields = Partial<Omit<ProcessConfig, CommonKey>>;

/** Reports a problem with one key of the process (its own line is named). */
export type Problem = (key: string, msg: string) => void;

type ProcessShape<K extends string, F extends z.ZodRawShape> = { name: typeof processName; kind: z.ZodLiteral<K> } & F &
  typeof processCommon;
type ProcessSchema<K extends string, F extends z.ZodRawShape> = z.ZodObject<ProcessShape<K, F>, z.core.$strict>;

export interface KindFactory<K extends string, F extends z.ZodRawShape> {
  /**
   * The rules across the kind's keys, or on a key's value, that its types do not express. Also
   * called when a key the kind requires is missing or a key of another kind is given, so that
   * every problem is named at once: a key it requires may be absent.
   */
  check?(p: Partial<z.output<ProcessSchema<K, F>>>, problem: Problem): void;
  /** The kind's part of ProcessConfig, from a process its schema accepted. */
  build(p: z.output<ProcessSchema<K, F>>): KindFields;
}

export interface KindDefinition<K extends string = string, F extends z.ZodRawShape = z.ZodRawShape> extends KindFactory<
  K,
  F
> {
  readonly kind: K;
  /** The kind's own keys, each with its type, whether the kind requires it, and its default. */
  readonly fields: F;
  /** A whole process of this kind: strict, so that a key of another kind is refused; with check. */
  readonly schema: ProcessSchema<K, F>;
}

/**
 * Whether the problems found so far leave every value given of its type: only keys missing
 * or of another kind (phase one checked the types of the others already).
 */
function typesHold(payload: z.core.ParsePayload): boolean {
  return payload.issues.every(
    (i) => i.code === 'unrecognized_keys' || (i.code === 'invalid_type' && i.input === undefined)
  );
}

/** One kind of process: its name, its own keys (the schema of a process of this kind) and its factory. */
export function defineKind<K extends string, F extends z.ZodRawShape>(
  kind: K,
  fields: F,
  factory: KindFactory<K, F>
): KindDefinition<K, F> {
  const shape = { name: processName, kind: z.literal(kind), ...fields, ...processCommon } as ProcessShape<K, F>;
  let schema = z.strictObject(shape);
  const { check } = factory;
  if (check) {
    schema = schema.superRefine(
      (p, ctx) => check(p, (key, msg) => ctx.addIssue({ code: 'custom', path: [key], message: msg })),
      { when: typesHold }
    );
  }
  return { kind, fields, schema, check, build: factory.build };
}
