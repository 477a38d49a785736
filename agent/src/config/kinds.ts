// The registry of the kinds of process the configuration knows: a kind is one module that
// declares its keys and factory with defineKind, and one line here. Its supervisor is
// registered in kinds/index.ts, which the type Kind makes complete.
import { z } from 'zod';
import { commandKind } from './command';
import { replicatorKind } from './replicator';
import { processCommon, processName, type KindFields } from './schema';
import { systemdKind } from './systemd';

const KIND_DEFINITIONS = [commandKind, systemdKind, replicatorKind] as const;

type Definitions = typeof KIND_DEFINITIONS;
/** The tuple of the kinds' schemas, as z.discriminatedUnion takes it. */
type Schemas<T> = { -readonly [I in keyof T]: T[I] extends { schema: infer S } ? S : never };
export type Kind = Definitions[number]['kind'];
export const KINDS = KIND_DEFINITIONS.map((k) => k.kind) as [Kind, ...Kind[]];

/**
 * Phase two: a process of its own kind, each kind with its own strict schema, so that a key of
 * another kind is refused and a key the kind requires is required.
 */
export const processSchema = z.discriminatedUnion(
  'kind',
  KIND_DEFINITIONS.map((k) => k.schema) as Schemas<Definitions>
);

/** The kind's part of ProcessConfig, for a process processSchema accepted. */
export function buildKind(p: z.output<typeof processSchema>): KindFields {
  const definition = KIND_DEFINITIONS.find((k) => k.kind === p.kind) as Definitions[number];
  // p is the output of this kind's schema: processSchema chose it by p.kind.
  return (definition.build as (p: z.output<typeof processSchema>) => KindFields)(p);
}

/** The kinds that take a key: what a key of another kind is "only allowed for". */
export function kindsWithKey(key: string): Kind[] {
  return KIND_DEFINITIONS.filter((k) => Object.hasOwn(k.fields, key)).map((k) => k.kind);
}

/**
 * The order in which unknown-key messages list the kinds' keys, pinned by fixtures since before
 * each kind had its own module: the keys named here first, then every other kind's own keys in
 * the order of the registry.
 */
const LISTED_FIRST = ['command', 'unit', 'cwd', 'env'];

function kindKeys(): Array<[string, z.ZodType]> {
  const out = new Map<string, z.ZodType>();
  for (const k of KIND_DEFINITIONS) {
    for (const [key, type] of Object.entries(k.fields) as Array<[string, z.ZodType]>) {
      // The type without the kind's optional or default: phase one checks types, not presence.
      // A key two kinds share is checked against the first kind's type here, each kind's in phase two.
      if (!out.has(key)) {
        out.set(
          key,
          type instanceof z.ZodOptional || type instanceof z.ZodDefault ? (type.unwrap() as z.ZodType) : type
        );
      }
    }
  }
  const rank = (key: string) => (LISTED_FIRST.includes(key) ? LISTED_FIRST.indexOf(key) : LISTED_FIRST.length);
  return [...out].sort(([a], [b]) => rank(a) - rank(b));
}

/**
 * Phase one: the keys any kind takes, each optional, with its type; a key no kind knows is
 * unknown. What every kind requires (name, kind) is required here.
 */
export const processKeysSchema = z.strictObject({
  name: processName,
  kind: z.enum(KINDS),
  ...(Object.fromEntries(kindKeys().map(([key, type]) => [key, type.optional()])) as Record<string, z.ZodOptional>),
  ...processCommon,
});

/** Every kind's schema: docs/agent.md's reference is checked against what each requires and defaults. */
export const kindSchemas: readonly z.ZodObject[] = KIND_DEFINITIONS.map((k) => k.schema);
