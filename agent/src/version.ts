import * as fs from 'node:fs';
import * as path from 'node:path';

// Both src/ (run through tsx) and dist/ sit one level below the package root.
function readVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export const VERSION = readVersion();
