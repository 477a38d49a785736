// Push mode: an agent the monitor cannot reach (NAT, a firewall, a DMZ) sends its status
// document itself, every `report.every` and at once when a process changes state, signed with
// its own report token. The wire format is pkg/report's (Go): an envelope {report, mac} where
// report is the JSON text of {agent, seq, sentAt, reason, dropped, status} and mac its
// HMAC-SHA256 under the token; the answer {answer, mac} is signed the same way and may ask for
// restarts or stops, which go through the same generation guard as POST .../restart.
//
// Reports go out with axios, through an HTTP proxy when HTTPS_PROXY / HTTP_PROXY say so (and
// NO_PROXY does not exempt the target) or report.proxy names one. An https target is tunnelled
// through the proxy with CONNECT (https-proxy-agent), so that the proxy never sees a report in
// clear; Node's built-in fetch would ignore the proxy settings altogether.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import * as path from 'node:path';
import axios from 'axios';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { getProxyForUrl } from 'proxy-from-env';
import type { ReportConfig } from './config';
import type { AgentEvent } from './events';
import type { Logger } from './log';
import { ConflictError, type ControlRequest } from './kinds/supervisor';

/** HMAC-SHA256 of text under token, in hex: pkg/report.Sign. */
export function sign(token: string, text: string): string {
  return crypto.createHmac('sha256', token).update(text, 'utf8').digest('hex');
}

export interface MonitorAction {
  action: 'restart' | 'stop';
  process: string;
  ifGeneration: number;
  reason: string;
  requestedBy: string;
}

/** What the reporter needs of the agent. */
export interface ReportTarget {
  /** The status document, as GET /v1/status gives it (agent.ts's StatusDocument). */
  status(): Promise<object>;
  onEvent(listener: (e: AgentEvent) => void): void;
  act(a: MonitorAction): Promise<string>;
}

interface Pending {
  seq: number;
  text: string;
  reason: string;
  /** The changes the backlog had let go when it was made (told to the monitor in it). */
  dropped: number;
}

/** How a refused report is told apart: retry later, or drop it. */
type Outcome = 'sent' | 'retry' | 'drop';

/** Waits after a failed send: 1 s, doubling, at most the report interval. */
const FIRST_RETRY_MS = 1000;

export class Reporter {
  private timer?: NodeJS.Timeout;
  private backlog: Pending[] = [];
  private dropped = 0;
  private lastSeq: number;
  private sending = false;
  private again = false;
  private retryMs = FIRST_RETRY_MS;
  private stopped = false;
  private readonly seqFile: string;
  private readonly client: ReturnType<typeof axios.create>;
  private lastProblem = '';

  constructor(
    private readonly cfg: ReportConfig,
    private readonly target: ReportTarget,
    stateDir: string,
    private readonly log: Logger
  ) {
    this.seqFile = path.join(stateDir, 'report-seq');
    this.lastSeq = readSeq(this.seqFile);
    this.client = axios.create({
      // proxy: false: the agents below carry the proxy; axios's own would send an https
      // request to the proxy in clear instead of tunnelling it.
      proxy: false,
      ...transportFor(cfg),
      timeout: cfg.timeoutMs,
      maxRedirects: 0,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      validateStatus: () => true,
      headers: {
        'content-type': 'application/json',
        ...(cfg.bearerToken ? { authorization: `Bearer ${cfg.bearerToken}` } : {}),
      },
    });
  }

  start(): void {
    this.target.onEvent((e) => {
      // A process changed state, or the node's role: the monitor hears of it at once.
      if (e.process !== undefined || e.type === 'role_changed') {
        this.trigger('change');
      }
    });
    this.trigger('schedule');
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Sends a report now (a change is kept until the monitor has it). */
  trigger(reason: 'schedule' | 'change'): void {
    if (this.stopped) {
      return;
    }
    if (this.sending) {
      this.again = true;
      if (reason === 'change') {
        void this.enqueue('change');
      }
      return;
    }
    void this.run(reason);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    if (!this.stopped) {
      this.timer = setTimeout(() => this.trigger('schedule'), ms);
      this.timer.unref();
    }
  }

  private nextSeq(): number {
    // Grows across restarts of the agent, even one that lost its state directory: the time in
    // milliseconds, or one more than the last.
    this.lastSeq = Math.max(this.lastSeq + 1, Date.now());
    try {
      fs.writeFileSync(this.seqFile, `${this.lastSeq}\n`, { mode: 0o600 });
    } catch (e) {
      this.log.warn('cannot persist the report sequence', { error: e });
    }
    return this.lastSeq;
  }

  private async make(reason: string): Promise<Pending> {
    const status = await this.target.status();
    const seq = this.nextSeq();
    const text = JSON.stringify({
      agent: this.cfg.name,
      seq,
      sentAt: new Date().toISOString(),
      reason,
      dropped: this.dropped,
      status,
    });
    return { seq, text, reason, dropped: this.dropped };
  }

  private async enqueue(reason: string): Promise<void> {
    const p = await this.make(reason);
    this.backlog.push(p);
    while (this.backlog.length > this.cfg.backlog) {
      this.backlog.shift();
      this.dropped++;
    }
  }

  private async run(reason: 'schedule' | 'change'): Promise<void> {
    this.sending = true;
    try {
      if (reason === 'change') {
        await this.enqueue('change');
      }
      // The changes kept, oldest first; then, when none is left, the current state.
      let ok = true;
      while (ok && this.backlog.length > 0 && !this.stopped) {
        const p = this.backlog[0];
        const outcome = await this.send(p);
        if (outcome === 'retry') {
          ok = false;
        } else {
          this.backlog.shift();
        }
      }
      if (ok && reason === 'schedule' && !this.stopped) {
        ok = (await this.send(await this.make('schedule'))) !== 'retry';
      }
      if (ok) {
        this.retryMs = FIRST_RETRY_MS;
        this.schedule(this.cfg.everyMs);
      } else {
        this.schedule(this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, this.cfg.everyMs);
      }
    } catch (e) {
      this.problem(`report failed: ${(e as Error).message}`);
      this.schedule(this.retryMs);
    } finally {
      this.sending = false;
    }
    if (this.again) {
      this.again = false;
      if (this.backlog.length > 0) {
        void this.run('schedule');
      }
    }
  }

  private async send(p: Pending): Promise<Outcome> {
    const body = JSON.stringify({ report: p.text, mac: sign(this.cfg.token, p.text) });
    let res;
    try {
      res = await this.client.post(this.cfg.to, body);
    } catch (e) {
      this.problem(`cannot reach the monitor at ${redact(this.cfg.to)}: ${(e as Error).message}`);
      return 'retry';
    }
    if (res.status === 200) {
      // The monitor now knows of the changes that were let go.
      this.dropped -= Math.min(p.dropped, this.dropped);
      this.lastProblem = '';
      await this.answer(p, String(res.data));
      return 'sent';
    }
    const why = errorText(res.data);
    switch (res.status) {
      case 400:
      case 409:
      case 413:
        // It can never be taken (malformed, or older than what the monitor has): the next is.
        this.log.warn('the monitor refused a report', { status: res.status, seq: p.seq, why });
        return 'drop';
      default:
        this.problem(`the monitor answered HTTP ${res.status}: ${why}`);
        return 'retry';
    }
  }

  /** Checks the answer's signature, then does what it asks, with the generation guard. */
  private async answer(p: Pending, raw: string): Promise<void> {
    let env: { answer?: unknown; mac?: unknown };
    try {
      env = JSON.parse(raw) as typeof env;
    } catch {
      this.log.warn('the monitor answered a report with something that is not JSON; ignored');
      return;
    }
    if (
      typeof env.answer !== 'string' ||
      typeof env.mac !== 'string' ||
      !macEqual(sign(this.cfg.token, env.answer), env.mac)
    ) {
      this.log.warn("the answer to a report is not signed with this agent's report token; ignored");
      return;
    }
    const a = JSON.parse(env.answer) as { agent?: string; seq?: number; actions?: MonitorAction[] };
    if (a.agent !== this.cfg.name || a.seq !== p.seq) {
      this.log.warn('the answer to a report is for another report; ignored', { seq: p.seq, answered: a.seq });
      return;
    }
    for (const act of a.actions ?? []) {
      const result = await this.target.act(act);
      this.log.info('did what the monitor asked in its answer', { action: act.action, process: act.process, result });
    }
  }

  private problem(text: string): void {
    // Once per new problem: a monitor down for an hour is one line, not 360.
    if (text !== this.lastProblem) {
      this.lastProblem = text;
      this.log.warn(text, { backlog: this.backlog.length, dropped: this.dropped });
    }
  }
}

/** The HTTP(S) agent for the target: through the configured or environment's proxy, or direct. */
export function transportFor(cfg: Pick<ReportConfig, 'to' | 'proxy' | 'ca'>): {
  httpAgent?: unknown;
  httpsAgent?: unknown;
} {
  const proxy = cfg.proxy ?? getProxyForUrl(cfg.to);
  const tls = cfg.ca ? { ca: cfg.ca } : {};
  if (cfg.to.startsWith('https:')) {
    return { httpsAgent: proxy ? new TunnelAgent(proxy, tls) : new https.Agent(tls) };
  }
  return proxy ? { httpAgent: new HttpProxyAgent(proxy) } : {};
}

type AgentConnectOpts = Parameters<HttpsProxyAgent<string>['connect']>[1];

/**
 * CONNECT through the proxy, then TLS to the monitor with the report's own TLS options (its CA):
 * https-proxy-agent applies constructor options to the proxy connection only.
 */
class TunnelAgent extends HttpsProxyAgent<string> {
  constructor(
    proxy: string,
    private readonly tls: { ca?: Buffer }
  ) {
    super(proxy);
  }

  override connect(req: http.ClientRequest, opts: AgentConnectOpts): Promise<net.Socket> {
    // The certificate is checked against the monitor's host as the report URL names it (the
    // tunnelled TLS connection is made without it, and would check "localhost" for an address).
    const host = opts.host ?? '';
    return super.connect(req, {
      ...opts,
      ...this.tls,
      checkServerIdentity: (_name: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(host, cert),
    } as AgentConnectOpts);
  }
}

/** Runs one action the monitor asked for; says how it went. */
export async function actOn(
  supervisors: Map<
    string,
    {
      restart(r: ControlRequest, how: 'restart'): Promise<{ generation: number }>;
      stop(r: ControlRequest): Promise<{ generation: number }>;
    }
  >,
  a: MonitorAction
): Promise<string> {
  const s = supervisors.get(a.process);
  if (!s) {
    return `no process "${a.process}" here`;
  }
  const req: ControlRequest = {
    ...(a.ifGeneration >= 0 ? { ifGeneration: a.ifGeneration } : {}),
    reason: a.reason,
    requestedBy: a.requestedBy,
  };
  try {
    const r = a.action === 'stop' ? await s.stop(req) : await s.restart(req, 'restart');
    return `${a.action} done, generation ${r.generation}`;
  } catch (e) {
    if (e instanceof ConflictError) {
      return `not done: generation ${e.requested} is stale, the current one is ${e.current}`;
    }
    return `failed: ${(e as Error).message}`;
  }
}

function readSeq(file: string): number {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

function macEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && crypto.timingSafeEqual(x, y);
}

function errorText(data: unknown): string {
  try {
    const e = JSON.parse(String(data)) as { error?: { message?: string } };
    return String(e.error?.message ?? data).slice(0, 300);
  } catch {
    return String(data).slice(0, 300);
  }
}

/** A URL as logs show it: without a query string (it may hold a secret). */
function redact(u: string): string {
  try {
    const x = new URL(u);
    x.search = '';
    x.username = '';
    x.password = '';
    return x.toString();
  } catch {
    return 'the report URL';
  }
}
