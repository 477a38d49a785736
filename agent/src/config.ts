// Configuration: parsed strictly (unknown keys are errors), defaults applied, then the
// cross-field checks a schema cannot express. Every problem names its key path and, when the
// text of the file is known, the line a person should look at. A process is checked in two
// phases: first against the keys any kind takes (an unknown key is named with all of them),
// then, once the whole file passed that, against its own kind's schema (config/kinds.ts lists
// the kinds, each in its own module): a key of another kind, a key its kind requires, and the
// kind's own checks.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, Parser, type YAMLError } from 'yaml';
import { z } from 'zod';
import { parseDuration } from './duration';
import type { HashChoice } from './replicator/digest';
import { buildKind, kindSchemas, kindsWithKey, processKeysSchema, processSchema, type Kind } from './config/kinds';
import { argv, duration, nonEmpty, type StopSignal } from './config/schema';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[]
  ) {
    super(`${file}: ${problems[0] ?? 'invalid configuration'}`);
    this.name = 'ConfigError';
  }
}

export { SIGNALS, type StopSignal } from './config/schema';
export { KINDS, type Kind } from './config/kinds';
export type Role = 'active' | 'passive';

export { parseDuration };

const roleSchema = z.strictObject({
  static: z.enum(['active', 'passive']).optional(),
  file: nonEmpty.optional(),
  command: argv.optional(),
  timeout: duration.default(2000),
  cacheFor: duration.default(1000),
});

const authSchema = z.strictObject({
  readToken: z.string().optional(),
  readTokenFile: nonEmpty.optional(),
  readTokens: z.array(z.string()).optional(),
  controlToken: z.string().optional(),
  controlTokenFile: nonEmpty.optional(),
  controlTokens: z.array(z.string()).optional(),
});

/** The `auth` mapping as written: where the tokens come from (re-read on SIGHUP). */
export type AuthSource = z.output<typeof authSchema>;

const schema = z.strictObject({
  listen: nonEmpty,
  stateDir: nonEmpty,
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  strictPermissions: z.boolean().default(false),
  auth: authSchema,
  tls: z.strictObject({ certFile: nonEmpty, keyFile: nonEmpty }).optional(),
  cluster: z
    .strictObject({
      name: nonEmpty,
      node: nonEmpty.optional(),
      role: roleSchema,
    })
    .optional(),
  events: z
    .strictObject({
      keep: z.number().int().min(10).max(100_000).default(1000),
      keepFailures: z.number().int().min(0).max(100_000).default(200),
    })
    .default({ keep: 1000, keepFailures: 200 }),
  processes: z.array(processKeysSchema).min(1, { message: 'must list at least one process' }),
  report: z
    .strictObject({
      to: nonEmpty,
      name: z
        .string()
        .regex(/^[A-Za-z0-9_-]{1,63}$/, {
          message: "must be 1 to 63 letters, digits, '-' or '_' (the agent's name in the monitor's fleet)",
        })
        .optional(),
      every: duration.default(10_000),
      token: z.string().optional(),
      tokenFile: nonEmpty.optional(),
      bearerToken: z.string().optional(),
      bearerTokenFile: nonEmpty.optional(),
      proxy: nonEmpty.optional(),
      caFile: nonEmpty.optional(),
      backlog: z.number().int().min(1).max(10_000).default(100),
      timeout: duration.default(10_000),
    })
    .optional(),
});

export interface ProcessConfig {
  name: string;
  kind: Kind;
  command?: string[];
  unit?: string;
  cwd?: string;
  env?: Record<string, string>;
  /** replicator: the protected tree, the store, how long old versions stay restorable. */
  source?: string;
  target?: string;
  retentionMs?: number;
  /** replicator: the content hash of a new store; an existing store keeps its own. */
  hash?: HashChoice;
  /** replicator: a key file; every journal record then carries a MAC (journalauth.ts). */
  journalKey?: string;
  /** replicator: verify the store in the background this often; 0 (the default): never. */
  verifyEveryMs?: number;
  startOnBoot: boolean;
  runOn: 'active' | 'always';
  stopSignal: StopSignal;
  stopTimeoutMs: number;
  autoRestart: boolean;
}

export type RoleSource =
  { type: 'static'; role: Role } | { type: 'file'; path: string } | { type: 'command'; argv: string[] };

export interface Config {
  file: string;
  listen: { host: string; port: number };
  stateDir: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  auth: {
    readTokens: string[];
    controlTokens: string[];
    readTokenFile?: string;
    controlTokenFile?: string;
    source: AuthSource;
  };
  /** Refuse token or configuration files that others can read or write, instead of warning. */
  strictPermissions: boolean;
  /** Token (or configuration) files that others can read or write: warned about and shown in /v1/status. */
  permissionWarnings: string[];
  tls?: { cert: Buffer; key: Buffer; certFile: string; keyFile: string };
  cluster?: { name: string; node: string; role: RoleSource; roleTimeoutMs: number; roleCacheMs: number };
  events: { keep: number; keepFailures: number };
  processes: ProcessConfig[];
  /** Push mode: send the status document to the monitor by itself (report.ts). */
  report?: ReportConfig;
  /** Non-fatal findings (short tokens), reported once the logger exists. */
  warnings: string[];
}

type Path = ReadonlyArray<string | number>;

/**
 * One problem: the key path, what is wrong, and whether its line is the line of that key (a
 * key given but wrong) or of the mapping that holds it (a key missing from it).
 */
interface Found {
  path: Path;
  msg: string;
  at?: 'key' | 'parent';
  /** The line is the line of this key instead (the second of two keys that exclude each other). */
  line?: Path;
}

/** The line of a key path in the file, when the text is known. */
export type Locator = (path: Path) => number | undefined;

function pathString(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') {
      out += `[${p}]`;
    } else {
      out += out === '' ? String(p) : `.${String(p)}`;
    }
  }
  return out === '' ? '(top level)' : out;
}

/**
 * "(line N)" goes after the first clause of a message: merged into a parenthesis that follows
 * it ("required (line 4; give one of ...)"), else before a "; " or at the end. Quoted values
 * are skipped; a message about a line of another file ("file F line 3: ...") is left as it is.
 */
export function withLine(msg: string, line: number | undefined): string {
  if (line === undefined || / line \d+:/.test(msg)) {
    return msg;
  }
  let quoted = false;
  for (let i = 0; i < msg.length; i++) {
    const c = msg[i];
    if (c === '\\' && quoted) {
      i++;
    } else if (c === '"') {
      quoted = !quoted;
    } else if (!quoted && c === ' ' && msg[i + 1] === '(') {
      return `${msg.slice(0, i)} (line ${line}; ${msg.slice(i + 2)}`;
    } else if (!quoted && c === ';' && msg[i + 1] === ' ') {
      return `${msg.slice(0, i)} (line ${line})${msg.slice(i)}`;
    }
  }
  return `${msg} (line ${line})`;
}

function lineOf(f: Found, locate: Locator | undefined): number | undefined {
  if (!locate) {
    return undefined;
  }
  if (f.line) {
    return locate(f.line) ?? locate(f.path.slice(0, -1));
  }
  if (f.at === 'parent') {
    return f.path.length > 1 ? locate(f.path.slice(0, -1)) : undefined;
  }
  return locate(f.path);
}

function render(f: Found, locate?: Locator): string {
  return `${pathString(f.path)}: ${withLine(f.msg, lineOf(f, locate))}`;
}

function describe(v: unknown): string {
  if (v === null) {
    return 'null';
  }
  if (Array.isArray(v)) {
    return 'list';
  }
  if (typeof v === 'object') {
    return 'mapping';
  }
  return typeof v;
}

function at(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') {
      return undefined;
    }
    cur = (cur as Record<PropertyKey, unknown>)[p as string];
  }
  return cur;
}

interface SchemaDef {
  type: string;
  shape?: Record<string, { _zod: { def: SchemaDef } }>;
  innerType?: { _zod: { def: SchemaDef } };
  element?: { _zod: { def: SchemaDef } };
}

/** The keys a mapping of the schema knows, in the order of the schema (and of docs/agent.md). */
function knownKeys(path: Path): string[] {
  let def = (schema as unknown as { _zod: { def: SchemaDef } })._zod.def;
  const unwrap = () => {
    while (def.innerType && (def.type === 'optional' || def.type === 'default' || def.type === 'nullable')) {
      def = def.innerType._zod.def;
    }
  };
  for (const p of path) {
    unwrap();
    const next = typeof p === 'number' ? def.element : def.shape?.[p];
    if (!next) {
      return [];
    }
    def = next._zod.def;
  }
  unwrap();
  return Object.keys(def.shape ?? {});
}

/**
 * Every key of the schema ("processes[].stopTimeout"), whether the schema requires it and
 * whether it has a default: docs/agent.md is checked against this. A key of a kind of process
 * counts as required (or defaulted) when its kind requires (or defaults) it.
 */
export function schemaKeys(): Array<{ path: string; required: boolean; hasDefault: boolean }> {
  const out: Array<{ path: string; required: boolean; hasDefault: boolean }> = [];
  const byPath = new Map<string, { required: boolean; hasDefault: boolean }>();
  const walk = (def: SchemaDef, prefix: string): void => {
    for (const [k, v] of Object.entries(def.shape ?? {})) {
      let d = v._zod.def;
      const required = d.type !== 'optional' && d.type !== 'default';
      const hasDefault = d.type === 'default';
      while (d.innerType && (d.type === 'optional' || d.type === 'default' || d.type === 'nullable')) {
        d = d.innerType._zod.def;
      }
      const p = prefix === '' ? k : `${prefix}.${k}`;
      const known = byPath.get(p);
      if (known) {
        known.required ||= required;
        known.hasDefault ||= hasDefault;
      } else {
        const key = { path: p, required, hasDefault };
        out.push(key);
        byPath.set(p, key);
      }
      if (d.type === 'object') {
        walk(d, p);
      }
      if (d.type === 'array' && d.element?._zod.def.type === 'object') {
        walk(d.element._zod.def, `${p}[]`);
      }
    }
  };
  walk((schema as unknown as { _zod: { def: SchemaDef } })._zod.def, '');
  for (const kind of kindSchemas) {
    walk((kind as unknown as { _zod: { def: SchemaDef } })._zod.def, 'processes[]');
  }
  return out;
}

/** Edit distance counting a swap of two neighbours as one edit ("stateDri" is 1 from "stateDir"). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) {
    (d[0] as number[])[j] = j;
  }
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const up = d[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min((up[j] as number) + 1, (row[j - 1] as number) + 1, (up[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
      row[j] = v;
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

/** The one known key close to a typo, if there is exactly one closest. */
export function suggest(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const same = known.filter((k) => k.toLowerCase() === lower);
  if (same.length === 1) {
    return same[0];
  }
  const limit = key.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestD = Infinity;
  let tie = false;
  for (const k of known) {
    const dd = distance(lower, k.toLowerCase());
    if (dd < bestD) {
      [best, bestD, tie] = [k, dd, false];
    } else if (dd === bestD) {
      tie = true;
    }
  }
  return bestD <= limit && !tie ? best : undefined;
}

function unknownKey(path: Path, key: string): Found {
  const known = knownKeys(path);
  const hint = suggest(key, known);
  return {
    path: [...path, key],
    msg: `unknown key;${hint ? ` did you mean ${hint}?` : ''} known keys: ${known.join(', ')}`,
  };
}

function formatIssues(issues: readonly z.core.$ZodIssue[], input: unknown, locate?: Locator): Found[] {
  const unknown: Found[] = [];
  const out: Found[] = [];
  for (const issue of issues) {
    const path = issue.path as Array<string | number>;
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const k of issue.keys) {
          unknown.push(unknownKey(path, k));
        }
        break;
      case 'invalid_type': {
        const got = at(input, path);
        if (got === undefined) {
          out.push({ path, msg: 'required', at: 'parent' });
        } else {
          const expected = issue.expected === 'int' ? 'integer' : issue.expected;
          out.push({ path, msg: `expected ${expected}, got ${describe(got)}` });
        }
        break;
      }
      case 'invalid_value':
        if (at(input, path) === undefined) {
          out.push({ path, msg: `required: one of ${issue.values.map((v) => String(v)).join(', ')}`, at: 'parent' });
        } else {
          out.push({ path, msg: `must be one of ${issue.values.map((v) => String(v)).join(', ')}` });
        }
        break;
      case 'invalid_union': {
        // Durations accept a string or a number; anything else lands here.
        const got = at(input, path);
        out.push({ path, msg: `expected a duration (string or number), got ${describe(got)}` });
        break;
      }
      case 'too_small':
      case 'too_big':
        out.push({
          path,
          msg: issue.message.startsWith('must')
            ? issue.message
            : issue.message.replace(/^Too (small|big): expected /, 'must be '),
        });
        break;
      default:
        out.push({ path, msg: issue.message });
    }
  }
  // A typo makes a key unknown and, often, a required one missing: the typo is the cause.
  if (locate) {
    unknown.sort((a, b) => (locate(a.path) ?? 0) - (locate(b.path) ?? 0));
  }
  return [...unknown, ...out];
}

/**
 * Phase two's problems with a process that phase one accepted: a key of another kind (named
 * with the kinds that take it, and first, as an unknown key is), a key its kind requires, and
 * what its kind's check finds.
 */
function kindIssues(issues: readonly z.core.$ZodIssue[], kind: Kind, input: unknown, prefix: Path): Found[] {
  const otherKind: Found[] = [];
  const out: Found[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...(issue.path as Array<string | number>)];
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        otherKind.push({
          path: [...path, k],
          msg: `only allowed for kind ${kindsWithKey(k)
            .map((x) => `"${x}"`)
            .join(' or ')}`,
        });
      }
    } else if (issue.code === 'invalid_type' && at(input, issue.path) === undefined) {
      out.push({ path, msg: `required for kind "${kind}"`, at: 'parent' });
    } else if (issue.code === 'custom') {
      out.push({ path, msg: issue.message });
    } else {
      // Not expected: phase one checked every key's type.
      out.push(...formatIssues([issue], input).map((f) => ({ ...f, path: [...prefix, ...f.path] })));
    }
  }
  return [...otherKind, ...out];
}

function parseListen(v: string): { host: string; port: number } | string {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(v);
  if (!m) {
    return 'must be host:port (for example 127.0.0.1:7070 or [::1]:7070)';
  }
  const port = Number(m[3]);
  if (port > 65535) {
    return 'port must be between 0 and 65535';
  }
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/**
 * A token file: one token per line (several while a rotation overlaps); blank lines and lines
 * starting with # are ignored. A token is one word: a line with white space inside is refused.
 */
function readTokenFile(path: string): { values: string[]; error?: string } {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    return { values: [], error: `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  const values: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const v = (lines[i] as string).trim();
    if (v === '' || v.startsWith('#')) {
      continue;
    }
    if (/\s/.test(v)) {
      return {
        values: [],
        error: `file ${path} line ${i + 1}: a token cannot contain white space (one token per line)`,
      };
    }
    values.push(v);
  }
  if (values.length === 0) {
    return { values: [], error: `file ${path} is empty` };
  }
  return { values };
}

function tokens(raw: AuthSource, which: 'read' | 'control', problems: Found[]): string[] {
  const single = raw[`${which}Token`];
  const file = raw[`${which}TokenFile`];
  const list = raw[`${which}Tokens`];
  const given = [single, file, list].filter((x) => x !== undefined).length;
  const keys = `auth.${which}Token, auth.${which}TokenFile or auth.${which}Tokens`;
  if (given === 0) {
    problems.push({ path: ['auth', `${which}Token`], msg: `required (give one of ${keys})`, at: 'parent' });
    return [];
  }
  if (given > 1) {
    // The line of the second one given.
    const second = [single, file, list]
      .map((x, i) => (x === undefined ? undefined : [`${which}Token`, `${which}TokenFile`, `${which}Tokens`][i]))
      .filter((k) => k !== undefined)[1] as string;
    problems.push({
      path: ['auth', `${which}Token`],
      msg: `give only one of ${keys}`,
      at: 'parent',
      line: ['auth', second],
    });
    return [];
  }
  if (single !== undefined) {
    if (single === '') {
      problems.push({ path: ['auth', `${which}Token`], msg: 'must not be empty' });
    }
    return single === '' ? [] : [single];
  }
  if (file !== undefined) {
    const r = readTokenFile(file);
    if (r.error) {
      problems.push({ path: ['auth', `${which}TokenFile`], msg: r.error });
    }
    return r.values;
  }
  const l = list ?? [];
  if (l.length === 0) {
    problems.push({ path: ['auth', `${which}Tokens`], msg: 'must list at least one token' });
  }
  l.forEach((t, i) => {
    if (t === '') {
      problems.push({ path: ['auth', `${which}Tokens`, i], msg: 'must not be empty' });
    }
  });
  return l.filter((t) => t !== '');
}

/** What loadTokens found: the tokens, and problems (fatal), warnings and permission warnings. */
export interface LoadedTokens {
  readTokens: string[];
  controlTokens: string[];
  problems: string[];
  /** The problems with their key paths, so that the configuration loader can name lines. */
  found: Found[];
  warnings: string[];
  permissionWarnings: string[];
}

/** Modes that let anyone but the owner read or write a secret. */
export const OPEN_MODE_BITS = 0o066;

function openness(mode: number): string {
  const by = (g: number, o: number) =>
    (mode & g) !== 0 && (mode & o) !== 0
      ? 'its group and others'
      : (mode & g) !== 0
        ? 'its group'
        : (mode & o) !== 0
          ? 'others'
          : '';
  const r = by(0o040, 0o004);
  const w = by(0o020, 0o002);
  return [r && `readable by ${r}`, w && `writable by ${w}`].filter((x) => x !== '').join(' and ');
}

/**
 * How a secret file is open to others than its owner ("readable by others (mode 0644)"), or
 * undefined when it is not, or when it cannot be examined (reading it reports that).
 */
export function openPermissions(file: string): string | undefined {
  let mode: number;
  try {
    mode = fs.statSync(file).mode & 0o7777;
  } catch {
    return undefined;
  }
  if ((mode & OPEN_MODE_BITS) === 0) {
    return undefined;
  }
  return `${openness(mode)} (mode ${mode.toString(8).padStart(4, '0')})`;
}

/**
 * The tokens and every check made on them: at start and, the same, at each SIGHUP reload. Token
 * files are (re-)read; inline tokens are taken as they are. Never throws.
 */
export function loadTokens(auth: AuthSource, configFile: string, strictPermissions: boolean): LoadedTokens {
  const found: Found[] = [];
  const warnings: string[] = [];
  const permissionWarnings: string[] = [];
  const readTokens = tokens(auth, 'read', found);
  const controlTokens = tokens(auth, 'control', found);
  for (const t of controlTokens) {
    if (readTokens.includes(t)) {
      const where = [auth.readTokenFile, auth.controlTokenFile].filter((f) => f !== undefined);
      const given =
        (['controlToken', 'controlTokenFile', 'controlTokens'] as const).find((k) => auth[k] !== undefined) ??
        'controlToken';
      found.push({
        path: ['auth', 'controlToken'],
        msg: `must differ from every read token${where.length > 0 ? ` (token files ${where.join(', ')})` : ''}`,
        at: 'parent',
        line: ['auth', given],
      });
      break;
    }
  }
  for (const [which, list] of [
    ['read', readTokens],
    ['control', controlTokens],
  ] as const) {
    if (list.some((t) => t.length < 16)) {
      warnings.push(
        `auth.${which}Token: a token shorter than 16 characters is easy to guess; use at least 32 random characters`
      );
    }
  }
  const secretFiles: Array<{ file: string; path: Path; what: string }> = [];
  if (auth.readTokenFile !== undefined) {
    secretFiles.push({ file: auth.readTokenFile, path: ['auth', 'readTokenFile'], what: 'token file' });
  }
  if (auth.controlTokenFile !== undefined) {
    secretFiles.push({ file: auth.controlTokenFile, path: ['auth', 'controlTokenFile'], what: 'token file' });
  }
  const inline = [auth.readToken, auth.readTokens, auth.controlToken, auth.controlTokens].some((x) => x !== undefined);
  if (inline) {
    secretFiles.push({ file: configFile, path: ['auth'], what: 'the configuration file, which holds tokens,' });
  }
  for (const { file, path: keyPath, what } of secretFiles) {
    const open = openPermissions(file);
    if (open === undefined) {
      continue;
    }
    const p = `${what} ${file} is ${open}; run chmod 600 ${file}`;
    if (strictPermissions) {
      found.push({ path: keyPath, msg: `${p} (strictPermissions refuses it)` });
    } else {
      permissionWarnings.push(`${pathString(keyPath)}: ${p}`);
    }
  }
  return { readTokens, controlTokens, problems: found.map((f) => render(f)), found, warnings, permissionWarnings };
}

/**
 * Validates an already-parsed document. Throws ConfigError listing every problem, unknown keys
 * first; `locate` (given by parseConfig) adds the line of each.
 */
export function buildConfig(doc: unknown, file: string, opts: LoadOptions = {}, locate?: Locator): Config {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(file, [`(top level): expected a mapping, got ${describe(doc)}`]);
  }
  const parsed = schema.safeParse(doc);
  if (!parsed.success) {
    throw new ConfigError(
      file,
      formatIssues(parsed.error.issues, doc, locate).map((f) => render(f, locate))
    );
  }
  const raw = parsed.data;
  const problems: Found[] = [];
  const warnings: string[] = [];

  const listen = parseListen(raw.listen);
  if (typeof listen === 'string') {
    problems.push({ path: ['listen'], msg: listen });
  }

  const strictPermissions = opts.strictPermissions === true || raw.strictPermissions;
  const auth = loadTokens(raw.auth, file, strictPermissions);
  problems.push(...auth.found);
  warnings.push(...auth.warnings);
  const { readTokens, controlTokens } = auth;

  let tls: Config['tls'];
  if (raw.tls) {
    const cert = readSecretFileRaw(raw.tls.certFile, ['tls', 'certFile'], problems);
    const key = readSecretFileRaw(raw.tls.keyFile, ['tls', 'keyFile'], problems);
    if (cert && key) {
      tls = { cert, key, certFile: raw.tls.certFile, keyFile: raw.tls.keyFile };
    }
  }

  let cluster: Config['cluster'];
  if (raw.cluster) {
    const r = raw.cluster.role;
    const sources = [r.static, r.file, r.command].filter((x) => x !== undefined).length;
    let role: RoleSource | undefined;
    if (sources !== 1) {
      problems.push({ path: ['cluster', 'role'], msg: 'give exactly one of static, file or command' });
    } else if (r.static !== undefined) {
      role = { type: 'static', role: r.static };
    } else if (r.file !== undefined) {
      role = { type: 'file', path: r.file };
    } else if (r.command !== undefined) {
      role = { type: 'command', argv: r.command };
    }
    if (role) {
      cluster = {
        name: raw.cluster.name,
        node: raw.cluster.node ?? os.hostname(),
        role,
        roleTimeoutMs: r.timeout,
        roleCacheMs: r.cacheFor,
      };
    }
  }

  const seen = new Map<string, number>();
  const processes: ProcessConfig[] = raw.processes.flatMap((p, i): ProcessConfig[] => {
    const first = seen.get(p.name);
    if (first !== undefined) {
      const firstLine = locate?.(['processes', first, 'name']);
      problems.push({
        path: ['processes', i, 'name'],
        msg: `duplicate name "${p.name}" (also processes[${first}]${firstLine === undefined ? '' : ` at line ${firstLine}`})`,
      });
    } else {
      seen.set(p.name, i);
    }
    // Phase two: the process as its kind has it, from the document as written (phase one's
    // output has its durations in milliseconds already).
    const input = (doc as { processes: unknown[] }).processes[i];
    const ofKind = processSchema.safeParse(input);
    if (!ofKind.success) {
      problems.push(...kindIssues(ofKind.error.issues, p.kind, input, ['processes', i]));
      return [];
    }
    const k = ofKind.data;
    return [
      {
        name: k.name,
        kind: k.kind,
        ...buildKind(k),
        startOnBoot: k.startOnBoot,
        runOn: k.runOn,
        stopSignal: k.stopSignal,
        stopTimeoutMs: k.stopTimeout,
        autoRestart: k.autoRestart,
      },
    ];
  });

  const report = raw.report ? reportConfig(raw.report, problems) : undefined;

  if (problems.length > 0) {
    throw new ConfigError(
      file,
      problems.map((f) => render(f, locate))
    );
  }
  return {
    file,
    listen: listen as { host: string; port: number },
    stateDir: raw.stateDir,
    logLevel: raw.logLevel,
    auth: {
      readTokens,
      controlTokens,
      readTokenFile: raw.auth.readTokenFile,
      controlTokenFile: raw.auth.controlTokenFile,
      source: raw.auth,
    },
    strictPermissions,
    permissionWarnings: auth.permissionWarnings,
    tls,
    cluster,
    events: raw.events,
    processes,
    report,
    warnings,
  };
}

/** Where and how the agent reports by itself (push mode). */
export interface ReportConfig {
  to: string;
  name: string;
  everyMs: number;
  token: string;
  bearerToken?: string;
  proxy?: string;
  ca?: Buffer;
  backlog: number;
  timeoutMs: number;
}

type RawReport = NonNullable<z.output<typeof schema>['report']>;

function reportConfig(r: RawReport, problems: Found[]): ReportConfig | undefined {
  const before = problems.length;
  const secret = (
    value: string | undefined,
    file: string | undefined,
    key: string,
    required: boolean
  ): string | undefined => {
    if (value !== undefined && file !== undefined) {
      problems.push({ path: ['report', `${key}File`], msg: `give ${key} or ${key}File, not both` });
      return undefined;
    }
    if (file !== undefined) {
      const b = readSecretFileRaw(file, ['report', `${key}File`], problems);
      const v = b?.toString('utf8').trim();
      if (b !== undefined && !v) {
        problems.push({ path: ['report', `${key}File`], msg: `${file} is empty` });
      }
      return v || undefined;
    }
    if (value === undefined && required) {
      problems.push({ path: ['report', key], msg: `required (give ${key} or ${key}File)`, at: 'parent' });
    }
    return value;
  };
  const token = secret(r.token, r.tokenFile, 'token', true);
  if (token !== undefined && token.length < 16) {
    problems.push({
      path: ['report', 'token'],
      msg: 'must be at least 16 characters (the monitor refuses shorter ones)',
    });
  }
  const bearerToken = secret(r.bearerToken, r.bearerTokenFile, 'bearerToken', false);
  const url = (text: string, key: string): void => {
    let u: URL;
    try {
      u = new URL(text);
    } catch {
      problems.push({ path: ['report', key], msg: `"${text}" is not an absolute http or https URL` });
      return;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      problems.push({ path: ['report', key], msg: `"${text}" is not an absolute http or https URL` });
    } else if (key === 'to' && (u.username || u.password)) {
      problems.push({ path: ['report', key], msg: 'must not carry a user name or password: give bearerToken' });
    }
  };
  url(r.to, 'to');
  if (r.proxy !== undefined) {
    url(r.proxy, 'proxy');
  }
  const ca = r.caFile !== undefined ? readSecretFileRaw(r.caFile, ['report', 'caFile'], problems) : undefined;
  if (r.every < 1000) {
    problems.push({ path: ['report', 'every'], msg: 'must be at least 1s' });
  }
  if (problems.length > before || token === undefined) {
    return undefined;
  }
  return {
    to: r.to,
    name: r.name ?? os.hostname().split('.')[0],
    everyMs: r.every,
    token,
    bearerToken,
    proxy: r.proxy,
    ca,
    backlog: r.backlog,
    timeoutMs: r.timeout,
  };
}

function readSecretFileRaw(path: string, key: Path, problems: Found[]): Buffer | undefined {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    problems.push({
      path: key,
      msg: `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    });
    return undefined;
  }
}

export interface LoadOptions {
  /** --strict-permissions: as the configuration key strictPermissions: true. */
  strictPermissions?: boolean;
}

export function loadConfig(file: string, opts: LoadOptions = {}): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'file not found'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory'
            : (e as Error).message;
    throw new ConfigError(file, [`cannot read configuration: ${why}`]);
  }
  return parseConfig(text, file, opts);
}

/** Parses and validates the text of a configuration file named `file`. Throws ConfigError only. */
export function parseConfig(text: string, file: string, opts: LoadOptions = {}): Config {
  const lines = new LineCounter();
  let doc: ReturnType<typeof parseDocument>;
  try {
    doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter: lines });
  } catch (e) {
    throw new ConfigError(file, [`invalid YAML: ${(e as Error).message.split('\n')[0] ?? 'parse error'}`]);
  }
  const index = indexDocument(doc.contents, lines);
  if (doc.errors.length > 0) {
    throw new ConfigError(file, yamlProblems(text, doc.errors, lines, index.duplicates));
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(file, [`invalid YAML: ${(e as Error).message.split('\n')[0] ?? 'parse error'}`]);
  }
  return buildConfig(value, file, opts, (p) => index.lines.get(pathString(p)));
}

interface Duplicate {
  path: Path;
  line: number | undefined;
  first: number | undefined;
}

/**
 * A key that is not a scalar ("? [a, b]: x"), as text; the schema refuses it later. Its text
 * can fail to come (a YAML 1.1 merge of a non-mapping inside it), and then it is only a name.
 */
function keyText(key: unknown): string {
  try {
    return String(key);
  } catch {
    return '(complex key)';
  }
}

/** Where each key path is: the line of its key (or of the list item), and keys given twice. */
function indexDocument(root: unknown, lc: LineCounter): { lines: Map<string, number>; duplicates: Duplicate[] } {
  const lines = new Map<string, number>();
  const duplicates: Duplicate[] = [];
  const lineAt = (n: unknown): number | undefined => {
    const r = (n as { range?: [number, number, number] } | null)?.range;
    return r ? lc.linePos(r[0]).line : undefined;
  };
  const walk = (node: unknown, path: Array<string | number>, depth: number): void => {
    if (depth > 64) {
      return;
    }
    if (isMap(node)) {
      const seen = new Map<string, number | undefined>();
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : keyText(pair.key);
        const line = lineAt(pair.key) ?? lineAt(pair.value);
        if (seen.has(key)) {
          const first = seen.get(key);
          duplicates.push({ path: [...path, key], line, first });
          continue;
        }
        seen.set(key, line);
        if (line !== undefined) {
          lines.set(pathString([...path, key]), line);
        }
        walk(pair.value, [...path, key], depth + 1);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const line = lineAt(item);
        if (line !== undefined) {
          lines.set(pathString([...path, i]), line);
        }
        walk(item, [...path, i], depth + 1);
      });
    }
  };
  walk(root, [], 0);
  return { lines, duplicates };
}

interface CstToken {
  type?: string;
  offset?: number;
  source?: string;
  start?: CstToken;
  end?: CstToken[];
}

/** The tokens of the text (quoted scalars and flow collections among them), in order. */
function cstTokens(text: string): CstToken[] {
  const out: CstToken[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth > 200 || v === null || typeof v !== 'object') {
      return;
    }
    if (Array.isArray(v)) {
      for (const x of v) {
        walk(x, depth + 1);
      }
      return;
    }
    const t = v as CstToken;
    if (typeof t.type === 'string' && typeof t.offset === 'number') {
      out.push(t);
    }
    for (const x of Object.values(v)) {
      walk(x, depth + 1);
    }
  };
  for (const token of new Parser().parse(text)) {
    walk(token, 0);
  }
  return out.sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0));
}

/**
 * Syntax problems, each at the line and column where a person has to change the file (the
 * parser often notices a problem lines later: an unclosed quote at the end of the file). Only
 * the first is reported, as the others tend to follow from it; then every key given twice.
 * Never the text of a line: it may hold a token.
 */
function yamlProblems(
  text: string,
  errors: readonly YAMLError[],
  lc: LineCounter,
  duplicates: readonly Duplicate[]
): string[] {
  const pos = (offset: number) => {
    const { line, col } = lc.linePos(Math.min(offset, text.length));
    return { line, col };
  };
  const where = (offset: number) => {
    if (offset >= text.length && text.slice(lc.lineStarts[lc.lineStarts.length - 1] ?? 0).trim() === '') {
      return 'invalid YAML at the end of the file';
    }
    const { line, col } = pos(offset);
    return `invalid YAML at line ${line}, column ${col}`;
  };
  const lineText = (line: number) =>
    text.slice(lc.lineStarts[line - 1] ?? 0, lc.lineStarts[line] ?? text.length).replace(/\r?\n$/, '');
  const out: string[] = [];
  const syntax = errors.filter((e) => e.code !== 'DUPLICATE_KEY');
  const first = syntax[0];
  if (first) {
    const offset = first.pos[0];
    const errorLine = pos(offset).line;
    const tokens = cstTokens(text);
    // A quote not closed on its line: the value runs on to the next quote or to the end of the file.
    const quote = tokens.find((t) => {
      if (
        (t.type !== 'double-quoted-scalar' && t.type !== 'single-quoted-scalar') ||
        t.offset === undefined ||
        t.source === undefined
      ) {
        return false;
      }
      const closed = isClosed(t.source);
      const endLine = pos(t.offset + t.source.length).line;
      return (!closed || t.source.includes('\n')) && t.offset <= offset && errorLine <= endLine + (closed ? 0 : 1);
    });
    // A [ or { never closed.
    const flow = tokens.find(
      (t) =>
        t.type === 'flow-collection' &&
        t.start?.offset !== undefined &&
        t.start.offset <= offset &&
        !(t.end ?? []).some((e) => e.source === ']' || e.source === '}')
    );
    const multiline = syntax.find(
      (e) => e.code === 'MULTILINE_IMPLICIT_KEY' && pos(e.pos[1]).line > pos(e.pos[0]).line
    );
    const strayItem = /^\s*-(\s|$)/.test(lineText(errorLine));
    if (quote?.offset !== undefined && quote.source !== undefined) {
      const q = quote.source[0] as string;
      const closed = isClosed(quote.source);
      out.push(
        `${where(quote.offset)}: the ${q} opened here is not closed on this line${closed ? ` (the value runs on to line ${pos(quote.offset + quote.source.length).line})` : ''}`
      );
    } else if (flow?.start?.offset !== undefined) {
      const open = flow.start.source ?? '[';
      out.push(`${where(flow.start.offset)}: the ${open} opened here is never closed with ${open === '{' ? '}' : ']'}`);
    } else if (first.code === 'TAB_AS_INDENT') {
      out.push(`${where(offset)}: a tab used for indentation; indent with spaces`);
    } else if (strayItem && first.code !== 'BAD_INDENT') {
      const col = lineText(errorLine).indexOf('-');
      out.push(
        `${where((lc.lineStarts[errorLine - 1] ?? 0) + col)}: a list item ("- ...") where a key of a mapping ("key: value") is expected`
      );
    } else if (multiline) {
      const line = pos(multiline.pos[1]).line;
      const col = lineText(line).search(/\S/);
      out.push(
        `${where((lc.lineStarts[line - 1] ?? 0) + Math.max(col, 0))}: this line is indented more than the key above it (line ${line - 1}), which already has a value`
      );
    } else if (
      first.code === 'BLOCK_AS_IMPLICIT_KEY' ||
      (first.code === 'MISSING_CHAR' && /map values/.test(first.message))
    ) {
      out.push(`${where(offset)}: a value cannot be another "key: value" on the same line; quote it if it holds ": "`);
    } else if (first.code === 'BAD_INDENT') {
      const col = lineText(errorLine).search(/\S/);
      const start = (lc.lineStarts[errorLine - 1] ?? 0) + Math.max(col, 0);
      out.push(
        `${where(Math.max(offset, start))}: ${/mapping items/.test(first.message) ? 'this key does not start at the same column as the keys of its mapping above it' : (first.message.split('\n')[0] ?? 'bad indentation')}`
      );
    } else if (first.code === 'MULTIPLE_DOCS') {
      out.push(`${where(offset)}: a second document (after ---); the configuration is one document`);
    } else {
      out.push(`${where(offset)}: ${first.message.split('\n')[0] ?? 'parse error'}`);
    }
  }
  for (const d of duplicates) {
    const lines = [
      d.line === undefined ? '' : `line ${d.line}`,
      d.first === undefined ? '' : `first at line ${d.first}`,
    ].filter((x) => x !== '');
    out.push(`${pathString(d.path)}: is given twice${lines.length > 0 ? ` (${lines.join('; ')})` : ''}`);
  }
  return out;
}

/** Whether a quoted scalar's source ends with its closing quote (not an escaped one). */
function isClosed(source: string): boolean {
  const q = source[0];
  if (source.length < 2 || !source.endsWith(q as string)) {
    return false;
  }
  if (q === "'") {
    return true;
  }
  const backslashes = /\\*$/.exec(source.slice(0, -1))?.[0].length ?? 0;
  return backslashes % 2 === 0;
}
