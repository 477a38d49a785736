// The keys of kind "replicator", Vigil's own CDP process (kinds/replicator.ts): the protected
// tree, the store, how long old versions stay restorable, the store's hash, the journal's key
// and how often the store is verified.
import * as path from 'node:path';
import { z } from 'zod';
import { HASH_CHOICES } from '../replicator/digest';
import { defineKind, duration, nonEmpty } from './schema';

const DAY_MS = 86_400_000;

export const replicatorKind = defineKind(
  'replicator',
  {
    source: nonEmpty,
    target: nonEmpty,
    retention: duration.default(7 * DAY_MS),
    hash: z.enum(HASH_CHOICES).default('auto'),
    journalKey: nonEmpty.optional(),
    verifyEvery: duration.default(0),
  },
  {
    check(p, problem) {
      for (const k of ['source', 'target'] as const) {
        const v = p[k];
        if (v !== undefined && !path.isAbsolute(v)) {
          problem(k, 'must be an absolute path');
        }
      }
      if (p.source !== undefined && p.target !== undefined && path.isAbsolute(p.source) && path.isAbsolute(p.target)) {
        const src = path.resolve(p.source);
        const tgt = path.resolve(p.target);
        const inside = (a: string, b: string) => a === b || a.startsWith(b.endsWith('/') ? b : b + '/');
        if (inside(tgt, src) || inside(src, tgt)) {
          problem('target', 'must be outside source, and source outside target');
        }
      }
      if (p.retention === 0) {
        problem('retention', 'must be greater than 0');
      }
      if (p.journalKey !== undefined && !path.isAbsolute(p.journalKey)) {
        problem('journalKey', 'must be an absolute path');
      }
      if (p.verifyEvery !== undefined && p.verifyEvery !== 0 && p.verifyEvery < 1000) {
        problem('verifyEvery', 'must be at least 1s, or 0 for never');
      }
    },
    build: (p) => ({
      source: path.resolve(p.source),
      target: path.resolve(p.target),
      retentionMs: p.retention,
      hash: p.hash,
      journalKey: p.journalKey === undefined ? undefined : path.resolve(p.journalKey),
      verifyEveryMs: p.verifyEvery,
    }),
  }
);
