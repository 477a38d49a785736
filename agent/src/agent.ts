// The agent: configuration, event log, role reader and one supervisor per process, behind
// an HTTP(S) server.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Auth } from './auth';
import { loadTokens, type Config, type LoadedTokens } from './config';
import { EventLog } from './events';
import { actOn, Reporter } from './report';
import { kinds, type ProcessStatus, type ProcessSupervisor } from './kinds';
import type { Logger } from './log';
import { RoleReader, type ObservedRole } from './role';
import { isSameProcessAlive, procInfo } from './kinds/procfs';
import { answerClientErrors, createHandler } from './server';
import { VERSION } from './version';

export class StateDirInUseError extends Error {}

export interface StatusDocument {
  apiVersion: 'v1';
  time: string;
  agent: { id: string; version: string; hostname: string; startedAt: string; pid: number };
  cluster: { name: string; node: string; role: ObservedRole; roleReadAt: string; roleError?: string } | null;
  processes: ProcessStatus[];
  /** What the operator should fix (token files others can read); always present, possibly empty. */
  warnings: string[];
}

export class Agent {
  private server?: http.Server;
  readonly events: EventLog;
  readonly role: RoleReader;
  readonly supervisors = new Map<string, ProcessSupervisor>();
  readonly auth: Auth;
  readonly id: string;
  readonly startedAt = new Date().toISOString();
  private shuttingDown?: Promise<void>;
  /** Token or configuration files that others can read or write (/v1/status warnings); renewed at each reload. */
  private permissionWarnings: string[];

  constructor(
    readonly config: Config,
    readonly log: Logger
  ) {
    fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
    this.lockStateDir();
    this.id = this.loadId();
    this.events = new EventLog(config.stateDir, config.events.keep, config.events.keepFailures, log);
    this.role = new RoleReader(config.cluster, this.events, log, this.loadLastRole());
    this.role.onChange = (r) => this.saveLastRole(r);
    this.auth = new Auth(config.auth);
    this.permissionWarnings = config.permissionWarnings;
    const deps = {
      stateDir: config.stateDir,
      node: config.cluster?.node ?? os.hostname(),
      events: this.events,
      log,
      role: async () => (await this.role.current()).role,
    };
    for (const p of config.processes) {
      this.supervisors.set(p.name, kinds[p.kind](p, deps));
    }
  }

  private get lockFile(): string {
    return path.join(this.config.stateDir, 'agent.pid');
  }

  /** One agent per stateDir: a second one would adopt the same processes and mix the event log. */
  private lockStateDir(): void {
    try {
      const prev = JSON.parse(fs.readFileSync(this.lockFile, 'utf8')) as { pid?: number; startTicks?: string };
      if (
        typeof prev.pid === 'number' &&
        prev.pid !== process.pid &&
        isSameProcessAlive(prev.pid, prev.startTicks ?? null)
      ) {
        throw new StateDirInUseError(`another vigil-agent (pid ${prev.pid}) is using stateDir ${this.config.stateDir}`);
      }
    } catch (e) {
      if (e instanceof StateDirInUseError) {
        throw e;
      }
      // no lock, or one left by an agent that is gone: take it over
    }
    fs.writeFileSync(
      this.lockFile,
      JSON.stringify({ pid: process.pid, startTicks: procInfo(process.pid)?.startTicks ?? null }) + '\n',
      {
        mode: 0o600,
      }
    );
  }

  private loadId(): string {
    const file = path.join(this.config.stateDir, 'agent-id');
    try {
      const id = fs.readFileSync(file, 'utf8').trim();
      if (id) {
        return id;
      }
    } catch {
      // first start
    }
    const id = randomUUID();
    fs.writeFileSync(file, id + '\n', { mode: 0o600 });
    return id;
  }

  private loadLastRole(): ObservedRole | undefined {
    try {
      return fs.readFileSync(path.join(this.config.stateDir, 'role'), 'utf8').trim() as ObservedRole;
    } catch {
      return undefined;
    }
  }

  private saveLastRole(role: ObservedRole): void {
    try {
      fs.writeFileSync(path.join(this.config.stateDir, 'role'), role + '\n', { mode: 0o600 });
    } catch (e) {
      this.log.warn('cannot persist the role', { error: e });
    }
  }

  private reporter?: Reporter;

  async start(): Promise<void> {
    const handler = createHandler(this);
    this.server = this.config.tls
      ? https.createServer({ cert: this.config.tls.cert, key: this.config.tls.key }, handler)
      : http.createServer(handler);
    this.server.keepAliveTimeout = 65_000;
    answerClientErrors(this.server);
    const server = this.server;
    // Listen first: a port already in use must fail before any process is touched.
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.listen.port, this.config.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const role = await this.role.current();
    this.events.add({
      type: 'agent_started',
      reason: `vigil-agent ${VERSION} started (pid ${process.pid})`,
      version: VERSION,
      pid: process.pid,
      role: role.role,
    });
    await Promise.all([...this.supervisors.values()].map((s) => s.recover(role.role)));
    if (this.config.report) {
      this.reporter = new Reporter(
        this.config.report,
        {
          status: () => this.status(),
          onEvent: (l) => this.events.onEvent(l),
          act: (a) => actOn(this.supervisors, a),
        },
        this.config.stateDir,
        this.log
      );
      this.reporter.start();
      this.log.info('reporting', {
        to: this.config.report.to,
        every: `${this.config.report.everyMs} ms`,
        name: this.config.report.name,
      });
    }
    const addr = server.address() as AddressInfo;
    this.log.info('listening', {
      address: `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
      tls: Boolean(this.config.tls),
    });
  }

  private hostname = { name: os.hostname(), at: Date.now() };

  private currentHostname(): string {
    // os.hostname() is a system call; a rename can wait a few seconds to show.
    if (Date.now() - this.hostname.at > 10_000) {
      this.hostname = { name: os.hostname(), at: Date.now() };
    }
    return this.hostname.name;
  }

  async status(): Promise<StatusDocument> {
    const role = await this.role.current();
    const c = this.config.cluster;
    const processes = await Promise.all([...this.supervisors.values()].map((s) => s.status(role.role)));
    return {
      apiVersion: 'v1',
      time: new Date().toISOString(),
      agent: {
        id: this.id,
        version: VERSION,
        hostname: this.currentHostname(),
        startedAt: this.startedAt,
        pid: process.pid,
      },
      cluster: c
        ? {
            name: c.name,
            node: c.node,
            role: role.role,
            roleReadAt: role.readAt,
            ...(role.error ? { roleError: role.error } : {}),
          }
        : null,
      processes,
      warnings: [...this.permissionWarnings],
    };
  }

  /**
   * SIGHUP: token files are re-read so a token can be rotated without a restart. The checks are
   * the start's (loadTokens); new tokens that fail them are refused and the current ones kept.
   */
  reloadTokens(): void {
    const c = this.config;
    const files = [c.auth.readTokenFile, c.auth.controlTokenFile].filter((f) => f !== undefined);
    let t: LoadedTokens;
    try {
      t = loadTokens(c.auth.source, c.file, c.strictPermissions);
    } catch (e) {
      this.log.error('token reload refused: unexpected error; keeping the current tokens', { files, error: e });
      return;
    }
    // Before anything could log them, whether they are taken or not.
    this.log.addSecrets([...t.readTokens, ...t.controlTokens]);
    if (t.problems.length > 0) {
      this.log.error(`token reload refused: ${t.problems.join('; ')}`, { files, kept: 'the current tokens' });
      return;
    }
    this.auth.replace(t.readTokens, t.controlTokens);
    this.permissionWarnings = t.permissionWarnings;
    for (const w of t.warnings) {
      this.log.warn('configuration warning', { warning: w });
    }
    for (const w of t.permissionWarnings) {
      this.log.warn('file permissions', { warning: w });
    }
    this.log.info('tokens reloaded', { read: t.readTokens.length, control: t.controlTokens.length, files });
  }

  shutdown(reason: string): Promise<void> {
    this.shuttingDown ??= this.doShutdown(reason);
    return this.shuttingDown;
  }

  private async doShutdown(reason: string): Promise<void> {
    this.reporter?.stop();
    const server = this.server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    server?.closeIdleConnections();
    await Promise.all([...this.supervisors.values()].map((s) => s.shutdown()));
    this.events.add({ type: 'agent_stopped', reason, pid: process.pid });
    server?.closeAllConnections();
    await closed;
    fs.rmSync(this.lockFile, { force: true });
  }
}
