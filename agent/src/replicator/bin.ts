#!/usr/bin/env node
// The replicator's own entry point: `node dist/replicator/bin.js --source DIR --target DIR …`,
// the same as `vigil-agent replicate …`. Kept apart from main.ts so the single-file bundle,
// which inlines main.ts, does not run it.
import { replicateMain } from './main';

replicateMain(process.argv.slice(2)).then(
  (code) => setImmediate(() => process.exit(code)),
  (e: unknown) => {
    process.stderr.write(
      JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'fatal', error: String(e) }) + '\n'
    );
    process.exit(1);
  }
);
