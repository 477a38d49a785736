// What the agent shows of supervised processes' environment and command lines: names stay,
// values whose names look secret go. The one place this rule is defined.

export const REDACTED = '[REDACTED]';

/** A name that looks like it holds a secret: PASSWORD, PASSWD, TOKEN, SECRET or KEY anywhere in it, any case. */
export const SECRET_NAME = /PASSWORD|PASSWD|TOKEN|SECRET|KEY/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** Environment variables: the value of every variable whose name looks secret is replaced. */
export function redactEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    out[k] = isSecretName(k) ? REDACTED : v;
  }
  return out;
}

// `--password=x`, `-key=x` and `DB_PASSWORD=x` (as given to env(1)): a name, then `=`.
const ASSIGNMENT = /^(-{0,2}[A-Za-z_][A-Za-z0-9_.-]*)=/;
// `--password x`: an option alone, its value is the next argument.
const OPTION = /^-{1,2}[A-Za-z_][A-Za-z0-9_.-]*$/;
// `scheme://user:password@host`: the password part of a URL's user information.
const URL_PASSWORD = /(\b[A-Za-z][A-Za-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^@/?#\s]*@/g;

/**
 * A command line: the value of an option or assignment whose name looks secret (`--password=x`,
 * `--api-key x`, `PGPASSWORD=x`), and the password of a URL (`postgres://u:x@h`), are replaced.
 * An option named like a secret takes the next argument with it, even if it was a flag: showing too
 * little is the safe mistake.
 */
export function redactArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  let hideNext = false;
  for (const a of argv) {
    if (hideNext) {
      out.push(REDACTED);
      hideNext = false;
      continue;
    }
    const assign = ASSIGNMENT.exec(a);
    if (assign && isSecretName(assign[1] as string)) {
      out.push(`${assign[1]}=${REDACTED}`);
      continue;
    }
    if (OPTION.test(a) && isSecretName(a)) {
      out.push(a);
      hideNext = true;
      continue;
    }
    out.push(a.replace(URL_PASSWORD, `$1${REDACTED}@`));
  }
  return out;
}

/** A command line shown as one string (in a message): its redacted arguments, JSON-quoted. */
export function describeArgv(argv: readonly string[] | undefined): string {
  return JSON.stringify(redactArgv(argv ?? []));
}
