#!/usr/bin/env node
// Entry point: `vigil-agent [run] --config FILE`, and the replicator's commands.
import { ConfigError, loadConfig } from './config';
import { createLogger } from './log';
import { Agent } from './agent';
import { VERSION } from './version';
import { replicateMain } from './replicator/main';
import { restoreMain, verifyMain, versionsMain } from './replicator/commands';
import { reportCommandLineError, reportConfigError, USAGE } from './usage';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

interface Args {
  config?: string;
  strictPermissions?: boolean;
  help?: boolean;
  version?: boolean;
  error?: string;
}

function parseArgs(argv: string[]): Args {
  const args = [...argv];
  if (args[0] === 'run') {
    args.shift();
  }
  const out: Args = {};
  while (args.length > 0) {
    const a = args.shift() as string;
    if (a === '--config' || a === '-c') {
      const v = args.shift();
      if (v === undefined || v === '') {
        return { error: `${a} needs a file name` };
      }
      out.config = v;
    } else if (a.startsWith('--config=')) {
      out.config = a.slice('--config='.length);
    } else if (a === '--strict-permissions') {
      out.strictPermissions = true;
    } else if (a === '--help' || a === '-h') {
      out.help = true;
    } else if (a === '--version') {
      out.version = true;
    } else {
      return { error: `unknown argument ${JSON.stringify(a)}` };
    }
  }
  return out;
}

async function main(): Promise<number> {
  const sub = process.argv[2];
  if (sub === 'replicate') {
    return replicateMain(process.argv.slice(3));
  }
  if (sub === 'restore') {
    return restoreMain(process.argv.slice(3));
  }
  if (sub === 'versions') {
    return versionsMain(process.argv.slice(3));
  }
  if (sub === 'verify') {
    return verifyMain(process.argv.slice(3));
  }
  const log = createLogger();
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    process.stdout.write(USAGE + '\n');
    return EXIT_OK;
  }
  if (args.version) {
    process.stdout.write(VERSION + '\n');
    return EXIT_OK;
  }
  // A person at a terminal reads text; systemd and journald keep one JSON line.
  const errorOutput = { isTTY: process.stderr.isTTY === true, write: (t: string) => process.stderr.write(t), log };
  if (args.error || !args.config) {
    reportCommandLineError(args.error ?? '--config FILE is required', errorOutput);
    return EXIT_USAGE;
  }
  let config;
  try {
    config = loadConfig(args.config, { strictPermissions: args.strictPermissions });
  } catch (e) {
    if (e instanceof ConfigError) {
      reportConfigError(e, errorOutput);
      return EXIT_USAGE;
    }
    throw e;
  }
  const agentLog = createLogger({ level: config.logLevel });
  agentLog.addSecrets([...config.auth.readTokens, ...config.auth.controlTokens]);
  if (config.report) {
    agentLog.addSecrets([config.report.token, ...(config.report.bearerToken ? [config.report.bearerToken] : [])]);
  }
  for (const w of config.warnings) {
    agentLog.warn('configuration warning', { warning: w });
  }
  for (const w of config.permissionWarnings) {
    agentLog.warn('file permissions', { warning: w });
  }

  let agent: Agent;
  try {
    agent = new Agent(config, agentLog);
  } catch (e) {
    agentLog.error('agent failed to start', { error: e });
    return EXIT_FAILURE;
  }
  try {
    await agent.start();
  } catch (e) {
    agentLog.error('agent failed to start', { error: e });
    await agent.shutdown('start failed').catch(() => undefined);
    return EXIT_FAILURE;
  }
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) {
        agentLog.warn('second signal while stopping; still waiting for processes to stop', { signal: sig });
        return;
      }
      stopping = true;
      agentLog.info('stopping', { signal: sig });
      agent
        .shutdown(`signal ${sig}`)
        .then(() => resolve(EXIT_OK))
        .catch((e: unknown) => {
          agentLog.error('shutdown failed', { error: e });
          resolve(EXIT_FAILURE);
        });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGHUP', () => agent.reloadTokens());
  });
}

main().then(
  (code) => {
    process.exitCode = code;
    // Open handles (watchers, sockets) must not keep a stopped agent alive.
    setImmediate(() => process.exit(code));
  },
  (e: unknown) => {
    process.stderr.write(
      JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'fatal', error: String(e) }) + '\n'
    );
    process.exit(EXIT_FAILURE);
  }
);
