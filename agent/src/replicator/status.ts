// The status file: how the replicator tells the agent about protection. The replicator
// rewrites it atomically (temporary file, rename) after every acknowledged batch (at most
// every 100 ms) and at least every second; the agent validates it with this schema.
import { z } from 'zod';

const time = z.string().nullable();

export const statusSchema = z.object({
  format: z.literal(1),
  pid: z.number().int(),
  name: z.string(),
  writtenAt: z.string(),
  /** failed: stopped on an error that makes writing unsafe (message says which); the agent restarts it. */
  state: z.enum(['starting', 'waiting_for_lease', 'catching_up', 'watching', 'stopped', 'failed']),
  message: z.string().nullable(),
  source: z.string(),
  target: z.string(),
  /** When the newest change in the source was seen. */
  lastChangeAt: time,
  /** When the newest change was acknowledged (its journal record fsynced). */
  lastReplicatedAt: time,
  /** The oldest change not acknowledged yet (null: everything seen is acknowledged). */
  atRiskSince: time,
  pendingChanges: z.number().int(),
  pendingBytes: z.number().int(),
  /** Paths whose changes are not captured right now (the first few), why, and since when. */
  notCovered: z.array(z.object({ path: z.string(), reason: z.string(), since: z.string() })),
  notCoveredCount: z.number().int(),
  watch: z.object({
    watches: z.number().int(),
    polled: z.array(z.object({ dir: z.string(), reason: z.string(), at: z.string() })),
  }),
  catchUp: z.object({
    startedAt: time,
    finishedAt: time,
    scanned: z.number().int(),
    changed: z.number().int(),
    scanMs: z.number().nullable(),
  }),
  journal: z.object({
    seq: z.number().int().nullable(),
    /** All segments together. */
    bytes: z.number().int().nullable(),
    segments: z.number().int(),
    earliestRestorable: time,
    paths: z.number().int(),
  }),
  latency: z.object({
    count: z.number().int(),
    p50Ms: z.number().nullable(),
    p99Ms: z.number().nullable(),
    maxMs: z.number().nullable(),
  }),
  lastPrune: z
    .object({
      cutoff: z.string(),
      earliest: z.string(),
      segmentsRemoved: z.number(),
      recordsRemoved: z.number(),
      objectsRemoved: z.number(),
      bytesRemoved: z.number(),
    })
    .nullable(),
  errors: z.array(z.string()),
  /** The last scheduled verify of the store (--verify-every); null before the first, absent from older replicators. */
  verify: z
    .object({
      at: z.string(),
      ok: z.boolean(),
      problems: z.number().int(),
      firstProblem: z.string().nullable(),
      durationSeconds: z.number(),
    })
    .nullable()
    .optional(),
});

export type ReplicatorStatus = z.infer<typeof statusSchema>;
