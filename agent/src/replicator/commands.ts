// `vigil-agent restore` and `vigil-agent versions`: exit 0 done, 1 refused or failed (the
// message says why), 2 invalid command line. `vigil-agent verify`: 0 clean, 1 problems, 2 invalid
// command line or not a store.
import { refusedByMac } from './journal';
import { JournalKeyError, authenticateReader, loadJournalKey } from './journalauth';
import { RestoreError, parseTime, restoreAsync, versions } from './restore';
import { VerifyError, verifyStore } from './verify';

export const RESTORE_USAGE =
  'usage: vigil-agent restore --store DIR --at TIME --to DIR [--path SUBPATH] [--keep-special] [--numeric-ids] [--journal-key FILE]';
export const VERSIONS_USAGE = 'usage: vigil-agent versions --store DIR --path PATH [--json] [--journal-key FILE]';

/**
 * Puts the store's journal key in use (or none); a store whose journal is authenticated is not
 * read without it. Returns an error message, or undefined.
 */
function useKey(store: string, keyFile: string | undefined): string | undefined {
  try {
    authenticateReader(store, keyFile === undefined ? undefined : loadJournalKey(keyFile));
    return undefined;
  } catch (e) {
    if (e instanceof JournalKeyError) {
      return e.message;
    }
    throw e;
  }
}

/** Records refused for their MAC make the answer incomplete: each is named, exit 1. */
function macRefusals(): string | undefined {
  const refused = refusedByMac();
  if (refused.length === 0) {
    return undefined;
  }
  for (const r of refused) {
    process.stderr.write(`vigil-agent: refused journal ${r}\n`);
  }
  return `${refused.length} journal record(s) refused: their MAC is missing or does not match (listed above); the store was changed by someone without the journal key`;
}
export const VERIFY_USAGE =
  'usage: vigil-agent verify --store DIR [--repair [--source DIR]] [--json] [--journal-key FILE]';

function parseFlags(argv: string[], allowed: string[], booleans: string[] = []): Record<string, string> | string {
  const out: Record<string, string> = {};
  const args = [...argv];
  while (args.length > 0) {
    const a = args.shift() as string;
    const m = /^--([a-z][a-z-]*)(?:=(.*))?$/.exec(a);
    if (!m || !(allowed.includes(m[1] as string) || booleans.includes(m[1] as string))) {
      return `unknown argument ${JSON.stringify(a)}`;
    }
    const name = m[1] as string;
    if (booleans.includes(name)) {
      out[name] = 'true';
      continue;
    }
    const v = m[2] ?? args.shift();
    if (v === undefined || v === '') {
      return `--${name} needs a value`;
    }
    out[name] = v;
  }
  return out;
}

function fail(usage: string, message: string, code: number): number {
  process.stderr.write(`vigil-agent: ${message}\n${code === 2 ? usage + '\n' : ''}`);
  return code;
}

export async function restoreMain(argv: string[]): Promise<number> {
  const f = parseFlags(argv, ['store', 'at', 'to', 'path', 'journal-key'], ['keep-special', 'numeric-ids']);
  if (typeof f === 'string') {
    return fail(RESTORE_USAGE, f, 2);
  }
  for (const k of ['store', 'at', 'to']) {
    if (!f[k]) {
      return fail(RESTORE_USAGE, `--${k} is required`, 2);
    }
  }
  const keyProblem = useKey(f.store as string, f['journal-key']);
  if (keyProblem) {
    return fail(RESTORE_USAGE, keyProblem, 1);
  }
  const at = parseTime(f.at as string);
  if (at === undefined) {
    return fail(
      RESTORE_USAGE,
      `--at ${JSON.stringify(f.at)}: use an ISO 8601 time (2026-11-26T04:20:00Z), "now" or "-10m"`,
      2
    );
  }
  try {
    const r = await restoreAsync({
      store: f.store as string,
      at,
      to: f.to as string,
      path: f.path,
      keepSpecial: f['keep-special'] === 'true',
      numericIds: f['numeric-ids'] === 'true',
    });
    for (const w of r.warnings) {
      process.stderr.write(`vigil-agent: warning: ${w}\n`);
    }
    process.stdout.write(
      `restored ${f.path ? `${f.path} from ` : ''}${f.store} as of ${r.at} into ${r.to}: ${r.files} files (${r.bytes} bytes), ${r.dirs} directories, ${r.links} symbolic links\n`
    );
    if (r.stripped.length > 0) {
      process.stdout.write(
        `setuid/setgid bits left out on ${r.stripped.length} path(s) (restore with --keep-special to keep them): ${r.stripped.join(', ')}\n`
      );
    }
    // Restored, but without some of their owners or attributes: said per path, not a failure.
    for (const m of r.metadata) {
      process.stderr.write(`vigil-agent: metadata not restored: ${m}\n`);
    }
    if (r.errors.length > 0) {
      for (const e of r.errors) {
        process.stderr.write(`vigil-agent: not restored: ${e}\n`);
      }
      return fail(
        RESTORE_USAGE,
        `${r.errors.length} file(s) could not be restored as recorded (listed above); everything else was`,
        1
      );
    }
    const refused = macRefusals();
    if (refused) {
      return fail(RESTORE_USAGE, refused, 1);
    }
    return 0;
  } catch (e) {
    return fail(RESTORE_USAGE, e instanceof RestoreError ? e.message : `restore failed: ${(e as Error).message}`, 1);
  }
}

export async function versionsMain(argv: string[]): Promise<number> {
  const f = parseFlags(argv, ['store', 'path', 'journal-key'], ['json']);
  if (typeof f === 'string') {
    return fail(VERSIONS_USAGE, f, 2);
  }
  for (const k of ['store', 'path']) {
    if (!f[k]) {
      return fail(VERSIONS_USAGE, `--${k} is required`, 2);
    }
  }
  const keyProblem = useKey(f.store as string, f['journal-key']);
  if (keyProblem) {
    return fail(VERSIONS_USAGE, keyProblem, 1);
  }
  try {
    const v = versions(f.store as string, f.path as string);
    for (const w of v.warnings) {
      process.stderr.write(`vigil-agent: warning: ${w}\n`);
    }
    if (f.json) {
      process.stdout.write(JSON.stringify(v, null, 2) + '\n');
      const refused = macRefusals();
      return refused ? fail(VERSIONS_USAGE, refused, 1) : 0;
    }
    if (v.versions.length === 0) {
      process.stdout.write(`no versions of ${v.path} in ${f.store}\n`);
      const refused = macRefusals();
      return refused ? fail(VERSIONS_USAGE, refused, 1) : 0;
    }
    const rows = v.versions.map((x) => [
      x.at,
      x.change,
      x.type ?? '-',
      x.size === null ? '-' : String(x.size),
      x.mode ?? '-',
      x.hash?.slice(0, 16) ?? x.linkTarget ?? '-',
    ]);
    const head = ['TIME', 'CHANGE', 'TYPE', 'SIZE', 'MODE', v.hashAlgorithm === 'sha256' ? 'SHA256' : 'BLAKE3'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
    const line = (r: string[]) =>
      r
        .map((c, i) => c.padEnd(widths[i] as number))
        .join('  ')
        .trimEnd() + '\n';
    process.stdout.write(line(head) + rows.map(line).join(''));
    const refused = macRefusals();
    return refused ? fail(VERSIONS_USAGE, refused, 1) : 0;
  } catch (e) {
    return fail(
      VERSIONS_USAGE,
      e instanceof RestoreError ? e.message : `cannot list versions: ${(e as Error).message}`,
      1
    );
  }
}

export async function verifyMain(argv: string[]): Promise<number> {
  const f = parseFlags(argv, ['store', 'source', 'journal-key'], ['json', 'repair']);
  if (typeof f === 'string') {
    return fail(VERIFY_USAGE, f, 2);
  }
  if (!f.store) {
    return fail(VERIFY_USAGE, '--store is required', 2);
  }
  if (f.source && !f.repair) {
    return fail(VERIFY_USAGE, '--source is only used with --repair', 2);
  }
  const keyProblem = useKey(f.store, f['journal-key']);
  if (keyProblem) {
    return fail(VERIFY_USAGE, keyProblem, 1);
  }
  let r;
  try {
    r = await verifyStore(f.store, { repair: f.repair === 'true', source: f.source });
  } catch (e) {
    if (e instanceof VerifyError) {
      return fail(VERIFY_USAGE, e.message, e.message.startsWith('cannot repair') ? 1 : 2);
    }
    return fail(VERIFY_USAGE, `verify failed: ${(e as Error).message}`, 1);
  }
  if (f.json) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  } else {
    const out: string[] = [];
    for (const p of r.problems) {
      out.push(
        `${p.message}${p.repair ? (p.repair.done ? ` [repaired: ${p.repair.how}]` : ` [not repaired: ${p.repair.how}]`) : ''}`
      );
    }
    for (const w of r.warnings) {
      out.push(`warning: ${w}`);
    }
    const c = r.checked;
    const mib = (c.objectBytes / 1048576).toFixed(1);
    const head = `${r.store}: ${c.segments} segment(s), ${c.records} records, ${c.objects} objects (${mib} MiB), ${c.mirrorPaths} mirror paths checked in ${(r.ms / 1000).toFixed(1)} s`;
    const tail =
      r.problems.length === 0
        ? 'no problems'
        : `${r.problems.length} problem(s)${f.repair ? `, ${r.repaired} repaired, ${r.notRepaired} not repaired` : ''}`;
    out.push(`${head}: ${tail}`);
    process.stdout.write(out.join('\n') + '\n');
  }
  // Refused records are among the problems too (journal damage at their offsets); name why.
  const refused = macRefusals();
  return r.ok && !refused ? 0 : 1;
}
