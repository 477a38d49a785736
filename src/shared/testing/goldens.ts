import { readFileSync } from 'fs';
import { join } from 'path';
import { dataFrameFromJSON, type DataFrame, type DataFrameJSON } from '@grafana/data';

// The backend's real answers, from the Go golden files (pkg/frames/testdata, pkg/plugin/testdata),
// so that the frontend's tests read what the backend sends, not frames or bodies built by hand.
// Regenerate them with `go test ./pkg/frames ./pkg/plugin -update`.

const root = join(__dirname, '..', '..', '..');

/** The frames of a golden frames file (*.golden.jsonc), e.g. 'pkg/plugin/testdata/query-status'. */
export function goldenFrames(name: string): DataFrame[] {
  const text = readFileSync(join(root, `${name}.golden.jsonc`), 'utf8');
  const json = text
    .split('\n')
    .filter((line) => !line.startsWith('//'))
    .join('\n');
  return (JSON.parse(json) as { frames: DataFrameJSON[] }).frames.map(dataFrameFromJSON);
}

/** A golden resource answer (*.golden.json), e.g. 'pkg/plugin/testdata/resource-agent-detail'. */
export function goldenAnswer(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(root, `${name}.golden.json`), 'utf8'));
}

type Answer = Record<string, unknown>;

/** GET agents/{name} as the backend answers it, changed where given; each process given is the
 * golden's process with those fields changed. */
export function agentDetailAnswer(change: Answer & { processes?: Answer[] } = {}): Answer {
  const golden = goldenAnswer('pkg/plugin/testdata/resource-agent-detail');
  const [process] = golden.processes as Answer[];
  const processes = (change.processes ?? (golden.processes as Answer[])).map((p) => ({ ...process, ...p }));
  return { ...golden, ...change, processes };
}

/** A restart's answer as the backend sends it, changed where given. */
export function restartAnswer(change: Answer = {}): Answer {
  return { ...goldenAnswer('pkg/plugin/testdata/resource-restart'), ...change };
}
