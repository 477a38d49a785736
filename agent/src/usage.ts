// What the agent says when its command line or configuration stops it from starting: text for a
// person at a terminal, one JSON log line for everything else (systemd, journald, tests).
import type { ConfigError } from './config';
import type { Logger } from './log';
import { RESTORE_USAGE, VERIFY_USAGE, VERSIONS_USAGE } from './replicator/commands';

const sub = (usage: string) => usage.replace(/^usage: /, '       ');

/** The commands people run; each subcommand's line is its own usage, defined once beside it. */
export const USAGE = [
  'usage: vigil-agent [run] --config FILE [--strict-permissions]',
  sub(RESTORE_USAGE),
  sub(VERSIONS_USAGE),
  sub(VERIFY_USAGE),
  '       vigil-agent replicate --source DIR --target DIR [...]   (started by the agent)',
  '       vigil-agent --version',
  '       vigil-agent --help',
].join('\n');

/** In a JSON line, where the usage is: not the text itself (it would be one line of \n escapes). */
export const HELP = 'vigil-agent --help';

/** A command-line error for a person: the error, then the usage. */
export function commandLineErrorText(error: string): string {
  return `vigil-agent: ${error}\n\n${USAGE}\n`;
}

/** A configuration error for a person: the file, then one problem per line. */
export function configErrorText(e: ConfigError): string {
  const n = e.problems.length;
  return `vigil-agent: invalid configuration ${e.file} (${n} ${n === 1 ? 'problem' : 'problems'}):\n${e.problems.map((p) => `  ${p}\n`).join('')}`;
}

/** Where the error goes: a terminal gets text, anything else one JSON line through the logger. */
export interface ErrorOutput {
  isTTY: boolean;
  write: (text: string) => void;
  log: Logger;
}

export function reportCommandLineError(error: string, out: ErrorOutput): void {
  if (out.isTTY) {
    out.write(commandLineErrorText(error));
  } else {
    out.log.error('invalid command line', { error, help: HELP });
  }
}

export function reportConfigError(e: ConfigError, out: ErrorOutput): void {
  if (out.isTTY) {
    out.write(configErrorText(e));
  } else {
    out.log.error('invalid configuration', { file: e.file, error: e.message, problems: e.problems, help: HELP });
  }
}
