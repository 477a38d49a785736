// The replicator's hold on the store's lease (store.ts): one writer per store. Taken before the
// journal is replayed, renewed on a timer, checked before every append (fencing), released at stop.
import { isSameProcessAlive, procInfo } from '../kinds/procfs';
import type { Logger } from '../log';
import { LeaseLostError, highestEpoch } from './segments';
import { acquireLease, holdsLease, releaseLease, renewLease, type Lease, type StoreLayout } from './store';

export const LEASE_LOST =
  'the lease on the store was taken by another replicator; stopping to leave it a single writer';

export interface LeaseHolderOptions {
  node: string;
  name: string;
  target: string;
  staleAfterMs: number;
  log: Logger;
}

export class LeaseHolder {
  private lease?: Lease;

  constructor(
    private readonly layout: StoreLayout,
    private readonly o: LeaseHolderOptions
  ) {}

  /** The lease while this writer holds it. */
  get held(): Lease | undefined {
    return this.lease;
  }

  /**
   * Takes the lease, waiting a second between tries while another writer holds it (`waiting`
   * is told why each time). Returns undefined when `closing` says to give up.
   */
  async take(waiting: (reason: string) => void, closing: () => boolean): Promise<Lease | undefined> {
    const startTicks = procInfo(process.pid)?.startTicks ?? null;
    let logged = false;
    for (;;) {
      const r = acquireLease(this.layout, {
        node: this.o.node,
        process: this.o.name,
        staleAfterMs: this.o.staleAfterMs,
        isAlive: isSameProcessAlive,
        startTicks,
        journalEpoch: () => highestEpoch(this.layout.root),
      });
      if (r.held) {
        this.lease = r.lease;
        this.o.log.info('lease taken', { store: this.o.target, node: this.o.node });
        return r.lease;
      }
      if (!logged) {
        this.o.log.warn('not writing: the store has another writer', {
          store: this.o.target,
          reason: r.reason,
          holder: r.holder,
        });
      }
      logged = true;
      waiting(r.reason);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (closing()) {
        return undefined;
      }
    }
  }

  /** Fencing: before every append, the lease must still name this writer. */
  check(): void {
    if (!this.lease || !holdsLease(this.layout, this.lease)) {
      throw new LeaseLostError(LEASE_LOST);
    }
  }

  /**
   * Renews the lease: 'held' (or nothing held to renew), 'lost' when another writer took it
   * (this holder then holds nothing), or the error that kept it from being renewed this time.
   */
  renew(): 'held' | 'lost' | Error {
    if (!this.lease) {
      return 'held';
    }
    try {
      if (renewLease(this.layout, this.lease)) {
        return 'held';
      }
    } catch (e) {
      return e as Error;
    }
    this.lease = undefined;
    return 'lost';
  }

  release(): void {
    if (this.lease) {
      releaseLease(this.layout, this.lease);
    }
  }
}
