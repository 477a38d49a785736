import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Config } from './config';
import type { Logger } from './log';
import { createHandler } from './server';

export class Agent {
  private server?: http.Server;

  constructor(
    readonly config: Config,
    readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    fs.mkdirSync(this.config.stateDir, { recursive: true, mode: 0o700 });
    const handler = createHandler(this);
    this.server = this.config.tls
      ? https.createServer({ cert: this.config.tls.cert, key: this.config.tls.key }, handler)
      : http.createServer(handler);
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.listen.port, this.config.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    this.log.info('listening', {
      address: `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
      tls: Boolean(this.config.tls),
    });
  }

  reloadTokens(): void {}

  async shutdown(reason: string): Promise<void> {
    const server = this.server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    this.log.info('stopped', { reason });
  }
}
