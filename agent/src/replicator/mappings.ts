// Files mapped into memory for writing (a shared, writable mmap): writes through such a mapping
// raise no change notification, and change the file's times only now and then. The processes'
// /proc/PID/maps list them with device and inode; the replicator checks those files on a timer
// instead of waiting for events. Only the processes this user may inspect are seen (all of
// them as root).
import * as fs from 'node:fs';

export interface Mapping {
  /** "major:minor" of the device, in decimal. */
  device: string;
  ino: number;
  pids: number[];
  /** The command name of the first process found mapping it. */
  comm: string;
}

/** "major:minor" (decimal) of a device number as stat gives it (glibc's makedev encoding). */
export function deviceOf(dev: number): string {
  const hi = Math.floor(dev / 2 ** 32);
  const lo = dev >>> 0;
  const major = ((lo >>> 8) & 0xfff) | ((hi & 0xfffff000) >>> 0);
  const minor = (lo & 0xff) | ((lo >>> 12) & 0xfff00);
  return `${major}:${minor}`;
}

/**
 * Shared writable file mappings of every process this user can inspect, on the given devices,
 * by "device ino". Lines look like
 *   7f3c2a000000-7f3c2a100000 rw-s 00000000 fe:01 1835011   /srv/data/db.lmdb
 */
export function writableMappings(devices: Set<string>, procRoot = '/proc'): Map<string, Mapping> {
  const out = new Map<string, Mapping>();
  let pids: string[];
  try {
    pids = fs.readdirSync(procRoot).filter((n) => /^\d+$/.test(n));
  } catch {
    return out;
  }
  for (const pid of pids) {
    let text: string;
    try {
      text = fs.readFileSync(`${procRoot}/${pid}/maps`, 'latin1');
    } catch {
      continue; // gone, or another user's
    }
    if (text.length === 0) {
      continue;
    }
    let pos = 0;
    while (pos < text.length) {
      let end = text.indexOf('\n', pos);
      if (end < 0) {
        end = text.length;
      }
      const line = text.slice(pos, end);
      pos = end + 1;
      // perms are the second field: "rw-s" is shared and writable.
      const sp = line.indexOf(' ');
      if (line.charCodeAt(sp + 2) !== 0x77 /* w */ || line.charCodeAt(sp + 4) !== 0x73 /* s */) {
        continue;
      }
      const f = line.split(/\s+/);
      const [majorHex, minorHex] = (f[3] ?? '').split(':');
      const ino = Number(f[4]);
      if (!ino || majorHex === undefined || minorHex === undefined) {
        continue;
      }
      const device = `${parseInt(majorHex, 16)}:${parseInt(minorHex, 16)}`;
      if (!devices.has(device)) {
        continue;
      }
      const key = `${device} ${ino}`;
      const m = out.get(key);
      if (m) {
        if (!m.pids.includes(Number(pid))) {
          m.pids.push(Number(pid));
        }
        continue;
      }
      let comm = '?';
      try {
        comm = fs.readFileSync(`${procRoot}/${pid}/comm`, 'utf8').trim();
      } catch {
        // gone meanwhile
      }
      out.set(key, { device, ino, pids: [Number(pid)], comm });
    }
  }
  return out;
}
