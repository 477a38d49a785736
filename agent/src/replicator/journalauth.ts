// Optional journal authentication. The store may sit on shared storage that another machine
// can write; CRC-32 framing detects accidents, not edits. With a key file configured
// (`journalKey` in the agent's configuration, `--journal-key` for replicate, restore, versions),
// every record carries an HMAC-SHA256 (`k`, see journal.ts) and every reader refuses a record
// whose MAC is missing or wrong, naming it.
//
// The store's `journal-auth.json` says from which record on the journal is authenticated
// (records written before the key was configured carry no MAC), with a MAC of its own, so that
// nobody without the key can move that point. A store that has it cannot be read without the key.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { recordMac, useJournalKey } from './journal';

export const AUTH_FILE = 'journal-auth.json';
const MIN_KEY_BYTES = 16;

export class JournalKeyError extends Error {}

/**
 * Reads a key file: at least 16 bytes (trailing white space ignored), readable by its owner
 * only, since anyone who can read it can forge records.
 */
export function loadJournalKey(file: string): Buffer {
  let st: fs.Stats;
  let raw: Buffer;
  try {
    st = fs.statSync(file);
    raw = fs.readFileSync(file);
  } catch (e) {
    throw new JournalKeyError(
      `journal key ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`
    );
  }
  if ((st.mode & 0o077) !== 0) {
    throw new JournalKeyError(
      `journal key ${file}: mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} lets other users read it: chmod 600 it`
    );
  }
  let end = raw.length;
  while (end > 0 && /\s/.test(String.fromCharCode(raw[end - 1] as number))) {
    end--;
  }
  const key = raw.subarray(0, end);
  if (key.length < MIN_KEY_BYTES) {
    throw new JournalKeyError(
      `journal key ${file}: ${key.length} bytes; use at least ${MIN_KEY_BYTES} (for example: head -c 32 /dev/urandom | base64 > ${file})`
    );
  }
  return Buffer.from(key);
}

interface AuthFile {
  alg: 'hmac-sha256';
  from: number;
  k: string;
}

function authMac(key: Buffer, from: number): string {
  return recordMac(key, `vigil journal authenticated from record ${from}`);
}

function readAuth(storeRoot: string): AuthFile | undefined {
  const file = path.join(storeRoot, AUTH_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }
    throw new JournalKeyError(`${file}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new JournalKeyError(`${file}: not JSON: the store's journal authentication cannot be checked`);
  }
  const a = parsed as Partial<AuthFile>;
  if (a.alg !== 'hmac-sha256' || !Number.isInteger(a.from) || typeof a.k !== 'string') {
    throw new JournalKeyError(`${file}: not understood (want {"alg":"hmac-sha256","from":N,"k":"..."})`);
  }
  return a as AuthFile;
}

/**
 * For a reader (restore, versions, verify): checks the key against the store and puts it in
 * use. A store with journal authentication refuses to be read without its key; a key given for
 * a store without it is an error too (nothing could be checked).
 */
export function authenticateReader(storeRoot: string, key: Buffer | undefined): void {
  const a = readAuth(storeRoot);
  if (!a) {
    if (key) {
      throw new JournalKeyError(
        `${storeRoot}: this store's journal is not authenticated (no ${AUTH_FILE}): nothing could be checked with the key; run without --journal-key, or configure journalKey for its replicator`
      );
    }
    useJournalKey(undefined);
    return;
  }
  if (!key) {
    throw new JournalKeyError(
      `${storeRoot}: this store's journal is authenticated: give its key with --journal-key FILE`
    );
  }
  if (a.k !== authMac(key, a.from)) {
    throw new JournalKeyError(
      `${storeRoot}: the journal key does not match this store's (${AUTH_FILE} does not check out with it)`
    );
  }
  useJournalKey(key, a.from);
}

/**
 * For the writer, before it replays the journal: a store already authenticated is read with
 * the key from its recorded start; `start` is called after the replay of a store not yet
 * authenticated, with the number of the next record, from which on it is.
 */
export function authenticateWriter(storeRoot: string, key: Buffer | undefined): { start(nextQ: number): void } {
  const a = readAuth(storeRoot);
  if (!key) {
    if (a) {
      throw new JournalKeyError(
        `${storeRoot}: this store's journal is authenticated: configure its key (journalKey) for the replicator`
      );
    }
    useJournalKey(undefined);
    return { start: () => undefined };
  }
  if (a) {
    if (a.k !== authMac(key, a.from)) {
      throw new JournalKeyError(
        `${storeRoot}: the journal key does not match this store's (${AUTH_FILE} does not check out with it)`
      );
    }
    useJournalKey(key, a.from);
    return { start: () => undefined };
  }
  useJournalKey(undefined);
  return {
    start(nextQ: number) {
      const file = path.join(storeRoot, AUTH_FILE);
      const tmp = `${file}.tmp`;
      const body: AuthFile = { alg: 'hmac-sha256', from: nextQ, k: authMac(key, nextQ) };
      fs.writeFileSync(tmp, JSON.stringify(body) + '\n', { mode: 0o600 });
      const fd = fs.openSync(tmp, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, file);
      useJournalKey(key, nextQ);
    },
  };
}
