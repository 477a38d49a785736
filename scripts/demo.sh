#!/usr/bin/env bash
# `make demo`: Vigil's main job on an embedded default fleet, all on loopback.
#
# Three vigil-agents supervise a stand-in CDP process each: demo-standalone, and demo-node-a /
# demo-node-b forming the cluster demo-ha (their role comes from a role file each). `vigil watch`
# monitors them with a short poll interval and small budgets, while this script injects faults,
# saying what each one is, so that every state shows within about two minutes:
#   UNKNOWN -> OK / STANDBY, RESTARTING (a killed CDP process), a cluster failover (CDP started on
#   the new active node, then stopped on the old one), DEGRADED (a CDP process that keeps
#   crashing trips the flap guard), GRACE then FAILED (a silent agent), and recovery.
# Everything lives in a temporary folder removed on exit. DEMO_PACE (default 1) stretches the
# waits between faults, e.g. DEMO_PACE=2 on a slow machine.
set -euo pipefail
cd "$(dirname "$0")/.."

pace=${DEMO_PACE:-1}
base_port=${DEMO_PORT:-17071}
dir=$(mktemp -d -t vigil-demo.XXXXXX)
pids=()
watch_pid=

cleanup() {
  [[ -n $watch_pid ]] && kill "$watch_pid" 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bold=$'\e[1m' reset=$'\e[0m'
[[ -t 1 ]] || { bold='' reset=''; }
say() { printf '\n%s==> %s%s\n\n' "$bold" "$*" "$reset"; }
pause() { sleep "$(awk "BEGIN { print $1 * $pace }")"; }

read_token=demo-read-token-0123456789
control_token=demo-control-token-0123456789
names=(demo-standalone demo-node-a demo-node-b)

# agent NAME PORT [NODE ROLE]: writes its config, and its role file for a cluster node.
write_agent() {
  local name=$1 port=$2 node=${3:-} role=${4:-}
  mkdir -p "$dir/$name"
  {
    echo "listen: \"127.0.0.1:$port\""
    echo "stateDir: \"$dir/$name/state\""
    echo "auth: { readToken: \"$read_token\", controlToken: \"$control_token\" }"
    if [[ -n $node ]]; then
      echo "$role" >"$dir/$name/role"
      echo "cluster: { name: demo-ha, node: $node, role: { file: \"$dir/$name/role\" } }"
    fi
    echo "processes:"
    echo "  - name: cdp"
    echo "    kind: command"
    echo "    command: [\"sleep\", \"infinity\"]"
    echo "    runOn: active"
    echo "    stopTimeout: 2s"
  } >"$dir/$name/agent.yaml"
}

start_agent() {
  local name=$1
  node agent/dist/cli.js run --config "$dir/$name/agent.yaml" 2>>"$dir/$name/agent.log" &
  pids+=($!)
  eval "pid_${name//-/_}=$!"
}

port_of() { case $1 in demo-standalone) echo "$base_port" ;; demo-node-a) echo $((base_port + 1)) ;; demo-node-b) echo $((base_port + 2)) ;; esac; }

cdp_pid() {
  curl -fs -H "Authorization: Bearer $read_token" "http://127.0.0.1:$(port_of "$1")/v1/status" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const p=JSON.parse(s).processes.find(p=>p.name==="cdp");console.log(p&&p.pid||"")})'
}

wait_healthy() {
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$(port_of "$1")/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "demo: $1 did not start; its log:" >&2
  cat "$dir/$1/agent.log" >&2
  exit 1
}

write_agent demo-standalone "$(port_of demo-standalone)"
write_agent demo-node-a "$(port_of demo-node-a)" node-a active
write_agent demo-node-b "$(port_of demo-node-b)" node-b passive

cat >"$dir/fleet.yaml" <<YAML
pollInterval: 2s
defaults:
  readToken: "$read_token"
  controlToken: "$control_token"
  # Small allowances so the demo shows GRACE and FAILED within seconds; real fleets use minutes.
  budget: { responseTime: 1s, processing: 1s, failover: 10s, restart: 12s, networkInterruption: 6s, appErrorRecovery: 6s, combine: max }
  autoRestart: { enabled: true, maxRestarts: 2, window: 2m, backoffInitial: 2s, backoffMax: 10s, stopWhenNotExpected: true }
agents:
  - name: demo-standalone
    url: "http://127.0.0.1:$(port_of demo-standalone)"
  - name: demo-node-a
    url: "http://127.0.0.1:$(port_of demo-node-a)"
    cluster: demo-ha
  - name: demo-node-b
    url: "http://127.0.0.1:$(port_of demo-node-b)"
    cluster: demo-ha
YAML

say "Starting three vigil-agents on 127.0.0.1:$base_port-$((base_port + 2)): demo-standalone, and demo-node-a (active) + demo-node-b (passive) in cluster demo-ha. Each supervises a CDP process."
for name in "${names[@]}"; do start_agent "$name"; done
for name in "${names[@]}"; do wait_healthy "$name"; done

say "vigil watch --config fleet.yaml: polls every 2 s; a budget of 14 s covers a silent agent. Every agent starts UNKNOWN."
# Piped through cat, watch appends a table per cycle, so these notes stay between them.
bin/vigil watch --config "$dir/fleet.yaml" --history "$dir/history" | cat &
watch_pid=$!
pause 7

say "Fault 1: kill -9 the CDP process on demo-standalone. The next poll sees it crashed where it should run: RESTARTING, a restart through the agent (with the generation it saw), then OK."
kill -9 "$(cdp_pid demo-standalone)"
pause 9

say "Fault 2: cluster failover. demo-node-a becomes passive, demo-node-b active. Vigil starts CDP on demo-node-b first and stops it on demo-node-a only once it runs on demo-node-b: never a moment without CDP, never two writers. demo-node-a ends in STANDBY."
echo passive >"$dir/demo-node-a/role"
echo active >"$dir/demo-node-b/role"
pause 14

say "Fault 3: the CDP process on demo-standalone keeps crashing. After more than 2 successful restarts within 2 minutes the flap guard suspends auto-restart: DEGRADED, with an event saying so (a person restarts it from Grafana or the window passes)."
for _ in 1 2 3; do
  pid=$(cdp_pid demo-standalone)
  [[ -n $pid ]] && kill -9 "$pid"
  pause 4
done
pause 4

say "Fault 4: stop the agent on demo-node-b (the active node). Silent but within its budget it is GRACE, the reason says which allowance is being spent; past 14 s it is FAILED, with a diagnosis of why (DNS, TCP, HTTP)."
kill "$pid_demo_node_b"
pause 22

say "Recovery: demo-node-b's agent comes back; its CDP process starts again (it is still the active node) and the agent is OK."
start_agent demo-node-b
wait_healthy demo-node-b
pause 10

say "Done. Every state and action above is also in the history store; 'vigil watch --json' prints them as JSON lines."
