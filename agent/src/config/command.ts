// The keys of kind "command": the argument vector the agent runs itself (kinds/command.ts),
// where and with what environment.
import { z } from 'zod';
import { argv, defineKind, nonEmpty } from './schema';

export const commandKind = defineKind(
  'command',
  {
    command: argv,
    cwd: nonEmpty.optional(),
    env: z.record(z.string(), z.string()).optional(),
  },
  { build: (p) => ({ command: p.command, cwd: p.cwd, env: p.env }) }
);
