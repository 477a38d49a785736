#!/usr/bin/env bash
# `make demo`: starts a vigil-agent on loopback supervising a stand-in CDP process, then runs
# `vigil watch` against it. Everything lives in a temporary folder that is removed on exit.
# DEMO_SECONDS (default 30) bounds the run; 0 runs until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${DEMO_SECONDS:-30}
port=${DEMO_PORT:-17071}
dir=$(mktemp -d -t vigil-demo.XXXXXX)
agent_pid=
cleanup() {
  [[ -n $agent_pid ]] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

read_token=demo-read-token-0123456789
control_token=demo-control-token-0123456789

cat >"$dir/agent.yaml" <<YAML
listen: "127.0.0.1:$port"
stateDir: "$dir/agent-state"
auth:
  readToken: "$read_token"
  controlToken: "$control_token"
processes:
  - name: cdp
    kind: command
    command: ["sleep", "infinity"]
    startOnBoot: true
YAML

cat >"$dir/fleet.yaml" <<YAML
pollInterval: 2s
defaults:
  readToken: "$read_token"
agents:
  - name: demo-standalone
    url: "http://127.0.0.1:$port"
YAML

echo "demo: starting vigil-agent on 127.0.0.1:$port (log: $dir/agent.log)"
node agent/dist/cli.js run --config "$dir/agent.yaml" 2>"$dir/agent.log" &
agent_pid=$!
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "demo: vigil watch --config fleet.yaml (Ctrl-C to stop)"
if [[ $seconds == 0 ]]; then
  bin/vigil watch --config "$dir/fleet.yaml"
else
  timeout --foreground "$seconds" bin/vigil watch --config "$dir/fleet.yaml" || [[ $? == 124 ]]
fi
echo "demo: done"
