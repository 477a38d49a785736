// The registry of process kinds: a kind is one ProcessSupervisor subclass, registered here.
import type { Kind, ProcessConfig } from '../config';
import { CommandSupervisor } from './command';
import { ReplicatorSupervisor } from './replicator';
import { SystemdSupervisor } from './systemd';
import type { ProcessSupervisor, SupervisorDeps } from './supervisor';

export const kinds: Record<Kind, (config: ProcessConfig, deps: SupervisorDeps) => ProcessSupervisor> = {
  command: (c, d) => new CommandSupervisor(c, d),
  systemd: (c, d) => new SystemdSupervisor(c, d),
  replicator: (c, d) => new ReplicatorSupervisor(c, d),
};

export { ProcessSupervisor, ConflictError, OperationError, UnavailableError } from './supervisor';
export type { ProcessStatus, ControlRequest, StartResult } from './supervisor';
