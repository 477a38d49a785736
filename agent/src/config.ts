// Configuration: parsed strictly (unknown keys are errors), defaults applied, then the
// cross-field checks a schema cannot express. Every problem names its key path.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from './duration';
import { HASH_CHOICES, type HashChoice } from './replicator/digest';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems[0] ?? 'invalid configuration'}`);
    this.name = 'ConfigError';
  }
}

export const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGKILL', 'SIGUSR1', 'SIGUSR2'] as const;
export type StopSignal = (typeof SIGNALS)[number];
export type Role = 'active' | 'passive';
export const KINDS = ['command', 'systemd', 'replicator'] as const;
export type Kind = (typeof KINDS)[number];

export { parseDuration };

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `invalid duration ${JSON.stringify(v)} (use e.g. 10s, 500ms, 2m, 7d, 0)` });
    return z.NEVER;
  }
  return ms;
});

const nonEmpty = z.string().min(1, { message: 'must not be empty' });
const argv = z.array(nonEmpty).min(1, { message: 'must have at least one element' });

const processSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, {
    message: 'must be 1-64 characters of letters, digits, ".", "_" or "-", starting with a letter or digit',
  }),
  kind: z.enum(KINDS),
  command: argv.optional(),
  unit: nonEmpty.optional(),
  cwd: nonEmpty.optional(),
  env: z.record(z.string(), z.string()).optional(),
  source: nonEmpty.optional(),
  target: nonEmpty.optional(),
  retention: duration.optional(),
  hash: z.enum(HASH_CHOICES).optional(),
  journalKey: nonEmpty.optional(),
  verifyEvery: duration.optional(),
  startOnBoot: z.boolean().default(true),
  runOn: z.enum(['active', 'always']).default('active'),
  stopSignal: z.enum(SIGNALS).default('SIGTERM'),
  stopTimeout: duration.default(10_000),
  autoRestart: z.boolean().default(false),
});

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
  processes: z.array(processSchema).min(1, { message: 'must list at least one process' }),
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
  | { type: 'static'; role: Role }
  | { type: 'file'; path: string }
  | { type: 'command'; argv: string[] };

export interface Config {
  file: string;
  listen: { host: string; port: number };
  stateDir: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  auth: { readTokens: string[]; controlTokens: string[]; readTokenFile?: string; controlTokenFile?: string; source: AuthSource };
  /** Refuse token or configuration files that others can read or write, instead of warning. */
  strictPermissions: boolean;
  /** Token (or configuration) files that others can read or write: warned about and shown in /v1/status. */
  permissionWarnings: string[];
  tls?: { cert: Buffer; key: Buffer; certFile: string; keyFile: string };
  cluster?: { name: string; node: string; role: RoleSource; roleTimeoutMs: number; roleCacheMs: number };
  events: { keep: number; keepFailures: number };
  processes: ProcessConfig[];
  /** Non-fatal findings (short tokens), reported once the logger exists. */
  warnings: string[];
}

function pathString(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out === '' ? '(top level)' : out;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'object') return 'mapping';
  return typeof v;
}

function at(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p as string];
  }
  return cur;
}

function formatIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string[] {
  const out: string[] = [];
  for (const issue of issues) {
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const k of issue.keys) out.push(`${pathString([...issue.path, k])}: unknown key`);
        break;
      case 'invalid_type': {
        const got = at(input, issue.path);
        if (got === undefined) out.push(`${pathString(issue.path)}: required`);
        else {
          const expected = issue.expected === 'int' ? 'integer' : issue.expected;
          out.push(`${pathString(issue.path)}: expected ${expected}, got ${describe(got)}`);
        }
        break;
      }
      case 'invalid_value':
        out.push(`${pathString(issue.path)}: must be one of ${issue.values.map((v) => String(v)).join(', ')}`);
        break;
      case 'invalid_union': {
        // Durations accept a string or a number; anything else lands here.
        const got = at(input, issue.path);
        out.push(`${pathString(issue.path)}: expected a duration (string or number), got ${describe(got)}`);
        break;
      }
      case 'too_small':
      case 'too_big':
        out.push(`${pathString(issue.path)}: ${issue.message.startsWith('must') ? issue.message : issue.message.replace(/^Too (small|big): expected /, 'must be ')}`);
        break;
      default:
        out.push(`${pathString(issue.path)}: ${issue.message}`);
    }
  }
  return out;
}

function parseListen(v: string): { host: string; port: number } | string {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(v);
  if (!m) return 'must be host:port (for example 127.0.0.1:7070 or [::1]:7070)';
  const port = Number(m[3]);
  if (port > 65535) return 'port must be between 0 and 65535';
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
    if (v === '' || v.startsWith('#')) continue;
    if (/\s/.test(v)) return { values: [], error: `file ${path} line ${i + 1}: a token cannot contain white space (one token per line)` };
    values.push(v);
  }
  if (values.length === 0) return { values: [], error: `file ${path} is empty` };
  return { values };
}

function tokens(
  raw: AuthSource,
  which: 'read' | 'control',
  problems: string[],
): string[] {
  const single = raw[`${which}Token`];
  const file = raw[`${which}TokenFile`];
  const list = raw[`${which}Tokens`];
  const given = [single, file, list].filter((x) => x !== undefined).length;
  const keys = `auth.${which}Token, auth.${which}TokenFile or auth.${which}Tokens`;
  if (given === 0) {
    problems.push(`auth.${which}Token: required (give one of ${keys})`);
    return [];
  }
  if (given > 1) {
    problems.push(`auth.${which}Token: give only one of ${keys}`);
    return [];
  }
  if (single !== undefined) {
    if (single === '') problems.push(`auth.${which}Token: must not be empty`);
    return single === '' ? [] : [single];
  }
  if (file !== undefined) {
    const r = readTokenFile(file);
    if (r.error) problems.push(`auth.${which}TokenFile: ${r.error}`);
    return r.values;
  }
  const l = list ?? [];
  if (l.length === 0) problems.push(`auth.${which}Tokens: must list at least one token`);
  l.forEach((t, i) => {
    if (t === '') problems.push(`auth.${which}Tokens[${i}]: must not be empty`);
  });
  return l.filter((t) => t !== '');
}

/** What loadTokens found: the tokens, and problems (fatal), warnings and permission warnings. */
export interface LoadedTokens {
  readTokens: string[];
  controlTokens: string[];
  problems: string[];
  warnings: string[];
  permissionWarnings: string[];
}

/** Modes that let anyone but the owner read or write a secret. */
export const OPEN_MODE_BITS = 0o066;

function openness(mode: number): string {
  const by = (g: number, o: number) => ((mode & g) !== 0 && (mode & o) !== 0 ? 'its group and others' : (mode & g) !== 0 ? 'its group' : (mode & o) !== 0 ? 'others' : '');
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
  if ((mode & OPEN_MODE_BITS) === 0) return undefined;
  return `${openness(mode)} (mode ${mode.toString(8).padStart(4, '0')})`;
}

/**
 * The tokens and every check made on them: at start and, the same, at each SIGHUP reload. Token
 * files are (re-)read; inline tokens are taken as they are. Never throws.
 */
export function loadTokens(auth: AuthSource, configFile: string, strictPermissions: boolean): LoadedTokens {
  const problems: string[] = [];
  const warnings: string[] = [];
  const permissionWarnings: string[] = [];
  const readTokens = tokens(auth, 'read', problems);
  const controlTokens = tokens(auth, 'control', problems);
  for (const t of controlTokens) {
    if (readTokens.includes(t)) {
      const where = [auth.readTokenFile, auth.controlTokenFile].filter((f) => f !== undefined);
      problems.push(`auth.controlToken: must differ from every read token${where.length > 0 ? ` (token files ${where.join(', ')})` : ''}`);
      break;
    }
  }
  for (const [which, list] of [['read', readTokens], ['control', controlTokens]] as const) {
    if (list.some((t) => t.length < 16)) {
      warnings.push(`auth.${which}Token: a token shorter than 16 characters is easy to guess; use at least 32 random characters`);
    }
  }
  const secretFiles: { file: string; what: string }[] = [];
  if (auth.readTokenFile !== undefined) secretFiles.push({ file: auth.readTokenFile, what: 'auth.readTokenFile: token file' });
  if (auth.controlTokenFile !== undefined) secretFiles.push({ file: auth.controlTokenFile, what: 'auth.controlTokenFile: token file' });
  const inline = [auth.readToken, auth.readTokens, auth.controlToken, auth.controlTokens].some((x) => x !== undefined);
  if (inline) secretFiles.push({ file: configFile, what: 'auth: the configuration file, which holds tokens,' });
  for (const { file, what } of secretFiles) {
    const open = openPermissions(file);
    if (open === undefined) continue;
    const p = `${what} ${file} is ${open}; run chmod 600 ${file}`;
    if (strictPermissions) problems.push(`${p} (strictPermissions refuses it)`);
    else permissionWarnings.push(p);
  }
  return { readTokens, controlTokens, problems, warnings, permissionWarnings };
}

/** Validates an already-parsed document. Throws ConfigError listing every problem. */
export function buildConfig(doc: unknown, file: string, opts: LoadOptions = {}): Config {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(file, [`(top level): expected a mapping, got ${describe(doc)}`]);
  }
  const parsed = schema.safeParse(doc);
  if (!parsed.success) throw new ConfigError(file, formatIssues(parsed.error.issues, doc));
  const raw = parsed.data;
  const problems: string[] = [];
  const warnings: string[] = [];

  const listen = parseListen(raw.listen);
  if (typeof listen === 'string') problems.push(`listen: ${listen}`);

  const strictPermissions = opts.strictPermissions === true || raw.strictPermissions;
  const auth = loadTokens(raw.auth, file, strictPermissions);
  problems.push(...auth.problems);
  warnings.push(...auth.warnings);
  const { readTokens, controlTokens } = auth;

  let tls: Config['tls'];
  if (raw.tls) {
    const cert = readSecretFileRaw(raw.tls.certFile, 'tls.certFile', problems);
    const key = readSecretFileRaw(raw.tls.keyFile, 'tls.keyFile', problems);
    if (cert && key) tls = { cert, key, certFile: raw.tls.certFile, keyFile: raw.tls.keyFile };
  }

  let cluster: Config['cluster'];
  if (raw.cluster) {
    const r = raw.cluster.role;
    const sources = [r.static, r.file, r.command].filter((x) => x !== undefined).length;
    let role: RoleSource | undefined;
    if (sources !== 1) problems.push('cluster.role: give exactly one of static, file or command');
    else if (r.static !== undefined) role = { type: 'static', role: r.static };
    else if (r.file !== undefined) role = { type: 'file', path: r.file };
    else if (r.command !== undefined) role = { type: 'command', argv: r.command };
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
  const processes: ProcessConfig[] = raw.processes.map((p, i) => {
    const where = `processes[${i}]`;
    const first = seen.get(p.name);
    if (first !== undefined) problems.push(`${where}.name: duplicate name "${p.name}" (also processes[${first}])`);
    else seen.set(p.name, i);
    const onlyFor = (k: string, kind: string) => problems.push(`${where}.${k}: only allowed for kind "${kind}"`);
    if (p.kind !== 'replicator') {
      for (const k of ['source', 'target', 'retention', 'hash', 'journalKey', 'verifyEvery'] as const) if (p[k] !== undefined) onlyFor(k, 'replicator');
    }
    if (p.kind === 'command') {
      if (p.command === undefined) problems.push(`${where}.command: required for kind "command"`);
      if (p.unit !== undefined) onlyFor('unit', 'systemd');
    } else if (p.kind === 'systemd') {
      if (p.unit === undefined) problems.push(`${where}.unit: required for kind "systemd"`);
      for (const k of ['command', 'cwd', 'env'] as const) {
        if (p[k] !== undefined) onlyFor(k, 'command');
      }
    } else {
      for (const k of ['command', 'cwd', 'env'] as const) if (p[k] !== undefined) onlyFor(k, 'command');
      if (p.unit !== undefined) onlyFor('unit', 'systemd');
      for (const k of ['source', 'target'] as const) {
        const v = p[k];
        if (v === undefined) problems.push(`${where}.${k}: required for kind "replicator"`);
        else if (!path.isAbsolute(v)) problems.push(`${where}.${k}: must be an absolute path`);
      }
      if (p.source !== undefined && p.target !== undefined && path.isAbsolute(p.source) && path.isAbsolute(p.target)) {
        const src = path.resolve(p.source);
        const tgt = path.resolve(p.target);
        const inside = (a: string, b: string) => a === b || a.startsWith(b.endsWith('/') ? b : b + '/');
        if (inside(tgt, src) || inside(src, tgt)) problems.push(`${where}.target: must be outside source (and source outside target)`);
      }
      if (p.retention === 0) problems.push(`${where}.retention: must be greater than 0`);
      if (p.journalKey !== undefined && !path.isAbsolute(p.journalKey)) problems.push(`${where}.journalKey: must be an absolute path`);
      if (p.verifyEvery !== undefined && p.verifyEvery !== 0 && p.verifyEvery < 1000) problems.push(`${where}.verifyEvery: must be at least 1s (or 0: never)`);
    }
    return {
      name: p.name,
      kind: p.kind,
      command: p.command,
      unit: p.unit,
      cwd: p.cwd,
      env: p.env,
      source: p.source === undefined ? undefined : path.resolve(p.source),
      target: p.target === undefined ? undefined : path.resolve(p.target),
      retentionMs: p.kind === 'replicator' ? (p.retention ?? 7 * 86_400_000) : undefined,
      hash: p.kind === 'replicator' ? (p.hash ?? 'auto') : undefined,
      journalKey: p.kind === 'replicator' && p.journalKey !== undefined ? path.resolve(p.journalKey) : undefined,
      verifyEveryMs: p.kind === 'replicator' ? (p.verifyEvery ?? 0) : undefined,
      startOnBoot: p.startOnBoot,
      runOn: p.runOn,
      stopSignal: p.stopSignal,
      stopTimeoutMs: p.stopTimeout,
      autoRestart: p.autoRestart,
    };
  });

  if (problems.length > 0) throw new ConfigError(file, problems);
  return {
    file,
    listen: listen as { host: string; port: number },
    stateDir: raw.stateDir,
    logLevel: raw.logLevel,
    auth: { readTokens, controlTokens, readTokenFile: raw.auth.readTokenFile, controlTokenFile: raw.auth.controlTokenFile, source: raw.auth },
    strictPermissions,
    permissionWarnings: auth.permissionWarnings,
    tls,
    cluster,
    events: raw.events,
    processes,
    warnings,
  };
}

function readSecretFileRaw(path: string, key: string, problems: string[]): Buffer | undefined {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    problems.push(`${key}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
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
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    throw new ConfigError(file, [`cannot read configuration: ${why}`]);
  }
  return parseConfig(text, file, opts);
}

/** Parses and validates the text of a configuration file named `file`. Throws ConfigError only. */
export function parseConfig(text: string, file: string, opts: LoadOptions = {}): Config {
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true, prettyErrors: true });
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0] ?? 'parse error';
    throw new ConfigError(file, [`invalid YAML: ${msg}`]);
  }
  return buildConfig(doc, file, opts);
}
