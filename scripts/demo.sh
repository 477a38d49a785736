#!/usr/bin/env bash
# `make demo`: Vigil's main job on an embedded default fleet, all on loopback.
#
# Three vigil-agents each supervise Vigil's replicator (a real CDP process) protecting a demo data
# folder that a writer keeps changing: demo-standalone its own, and demo-node-a / demo-node-b,
# forming the cluster demo-ha (their role comes from a role file each), one shared folder and store,
# as two nodes on shared storage (the store's lease keeps one writer). `vigil watch` monitors them
# with a short poll interval and small budgets, while this script injects faults, saying what each
# one is, so that every state shows within about two minutes:
#   UNKNOWN -> OK / STANDBY, RESTARTING (a killed CDP process; protection lag while it is down,
#   caught up after the restart), a cluster failover (CDP started on the new active node, then
#   stopped on the old one), DEGRADED (a CDP process that keeps crashing trips the flap guard),
#   GRACE then FAILED (a silent agent), recovery, and a point-in-time restore from the store.
#
# Settings (environment variables):
#   DEMO_PORT  first of the three loopback ports of the agents (default 7071, so 7071-7073: the
#              ports the repository's provisioning and docker-compose.yaml point Grafana at)
#   DEMO_PACE  stretches the waits between faults (default 1; e.g. 2 on a slow machine)
#   DEMO_STAY  1: after the tour, keep the agents running (for Grafana) until Ctrl-C
# The agents, their data and stores live in a temporary folder removed on exit; the monitor's
# history (every state change and action) is kept in .demo/ (`bin/vigil history` reads it). A
# failed run keeps its temporary folder, with the agents' logs, and says where it is.
set -euo pipefail
cd "$(dirname "$0")/.."

pace=${DEMO_PACE:-1}
base_port=${DEMO_PORT:-7071}
keep=.demo
dir=$(mktemp -d -t vigil-demo.XXXXXX)
pids=()
watch_pid=

cleanup() {
  local status=$?
  [[ -n $watch_pid ]] && kill "$watch_pid" 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ $status -ne 0 && $status -ne 130 ]]; then
    echo "demo: failed (exit $status); its files and the agents' logs are kept in $dir (agent logs: $dir/*/agent.log)" >&2
  else
    rm -rf "$dir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $base_port =~ ^[0-9]+$ && $base_port -ge 1024 && $base_port -le 65533 ]] || {
  echo "demo: DEMO_PORT=$base_port is not a port between 1024 and 65533" >&2
  exit 2
}

# shellcheck source=demo-common.sh
. scripts/demo-common.sh
names=(demo-standalone demo-node-a demo-node-b)

# agent NAME PORT DATA [NODE ROLE]: writes its config, and its role file for a cluster node.
write_agent() {
  local name=$1 port=$2 data=$3 node=${4:-} role=${5:-}
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
    echo "    kind: replicator"
    echo "    source: \"$dir/data/$data\""
    echo "    target: \"$dir/store/$data\""
    echo "    retention: 1d"
    echo "    runOn: active"
    echo "    stopTimeout: 5s"
  } >"$dir/$name/agent.yaml"
}

start_agent() {
  local name=$1
  node agent/dist/cli.js run --config "$dir/$name/agent.yaml" 2>>"$dir/$name/agent.log" &
  pids+=($!)
  eval "pid_${name//-/_}=$!"
}

agent_pid() { local v="pid_${1//-/_}"; echo "${!v}"; }

# What listens on a loopback port, as ss says it (program and pid), or nothing.
port_holder() {
  command -v ss >/dev/null 2>&1 || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n 1 || true
}


port_of() { case $1 in demo-standalone) echo "$base_port" ;; demo-node-a) echo $((base_port + 1)) ;; demo-node-b) echo $((base_port + 2)) ;; demo-pushed) echo $((base_port + 4)) ;; esac; }
# Where vigil watch receives the pushed agent's reports.
report_port=$((base_port + 3))
push_token=demo-push-token-0123456789

cdp_pid() {
  curl -fs -H "Authorization: Bearer $read_token" "http://127.0.0.1:$(port_of "$1")/v1/status" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const p=JSON.parse(s).processes.find(p=>p.name==="cdp");console.log(p&&p.pid||"")})'
}

# Healthy means: our agent process still runs, it says it listens on its port, and /healthz answers.
wait_healthy() {
  local pid port
  pid=$(agent_pid "$1") port=$(port_of "$1")
  for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: the agent $1 exited at start; its log:" >&2
      cat "$dir/$1/agent.log" >&2
      exit 1
    fi
    if grep -q "\"listening\",\"address\":\"127.0.0.1:$port\"" "$dir/$1/agent.log" 2>/dev/null &&
      curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "demo: the agent $1 did not answer on 127.0.0.1:$port within 10 s; its log:" >&2
  cat "$dir/$1/agent.log" >&2
  exit 1
}

for name in "${names[@]}" demo-pushed reports; do
  port=$(port_of "$name")
  [[ $name == reports ]] && port=$report_port
  if port_taken "$port"; then
    holder=$(port_holder "$port")
    echo "demo: 127.0.0.1:$port, the port of the demo's $name, is already in use${holder:+ by $holder}." >&2
    echo "demo: stop that process, or run the demo on other ports: DEMO_PORT=17071 make demo (uses DEMO_PORT to DEMO_PORT+4)." >&2
    exit 1
  fi
done

mkdir -p "$dir/data/standalone" "$dir/data/demo-ha" "$dir/store"
write_agent demo-standalone "$(port_of demo-standalone)" standalone
write_agent demo-node-a "$(port_of demo-node-a)" demo-ha node-a active
write_agent demo-node-b "$(port_of demo-node-b)" demo-ha node-b passive
# demo-pushed: an agent the monitor is not told how to reach. It reports by itself, every 2 s and
# at once on a change, signed with its own token; its CDP process is a plain command.
mkdir -p "$dir/demo-pushed"
cat >"$dir/demo-pushed/agent.yaml" <<AGENT
listen: "127.0.0.1:$(port_of demo-pushed)"
stateDir: "$dir/demo-pushed/state"
auth: { readToken: "$read_token", controlToken: "$control_token" }
processes:
  - { name: cdp, kind: command, command: [sleep, "100000"], stopTimeout: 1s }
report: { to: "http://127.0.0.1:$report_port/v1/reports", name: demo-pushed, every: 2s, token: "$push_token" }
AGENT

# The protected data: a writer adds and changes files in both folders every half second.
writer() {
  local i=0
  while :; do
    i=$((i + 1))
    echo "entry $i at $(date +%T.%N)" >>"$dir/data/standalone/journal.txt"
    echo "report $i" >"$dir/data/standalone/report-$((i % 20)).txt"
    echo "order $i" >"$dir/data/demo-ha/order-$((i % 50)).txt"
    sleep 0.5
  done
}

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
  - name: demo-pushed            # reports by itself to vigil watch --listen: no URL
    transport: push
    reportEvery: 2s
    reportToken: "$push_token"
handlers:
  # A corrective action (like a Nagios event handler), run once when an agent turns FAILED. A real one
  # would reset the VM through its hypervisor or page someone; this one writes down what it would do.
  - name: reset-vm
    on: [FAILED]
    level: agent
    command: [sh, -c, 'echo "would reset the VM of \$VIGIL_AGENT (\$VIGIL_PREVIOUS_STATE -> \$VIGIL_STATE after \$VIGIL_BUDGET_SECONDS s)" | tee -a "$dir/handler.log"']
    timeout: 10s
YAML

say "Starting three vigil-agents on 127.0.0.1:$base_port-$((base_port + 2)): demo-standalone, and demo-node-a (active) + demo-node-b (passive) in cluster demo-ha. Each supervises the replicator, protecting $dir/data/* into $dir/store/*, while a writer changes files there twice a second."
writer &
pids+=($!)
for name in "${names[@]}"; do start_agent "$name"; done
for name in "${names[@]}"; do wait_healthy "$name"; done

say "vigil watch --config fleet.yaml: polls every 2 s; a budget of 14 s covers a silent agent. Every agent starts UNKNOWN."
# Into a pipe, watch appends a table per cycle, so these notes stay between them. The process
# substitution keeps $! the PID of watch itself, so that it can be stopped below.
rm -rf "$keep" && mkdir -p "$keep"
cp "$dir/fleet.yaml" "$keep/fleet.yaml"
bin/vigil watch --config "$dir/fleet.yaml" --history "$keep/history" --listen "127.0.0.1:$report_port" > >(cat) &
watch_pid=$!
say "And demo-pushed, an agent vigil watch cannot reach: it reports by itself to 127.0.0.1:$report_port (vigil watch --listen)."
start_agent demo-pushed
wait_healthy demo-pushed
pause 7

say "Fault 1: kill -9 the replicator on demo-standalone. The next poll sees it crashed where it should run: RESTARTING, a restart through the agent (with the generation it saw), then OK. LAG is how far protection is behind: it grows while the replicator is down and drops once its catch-up has captured what was written meanwhile."
restore_point=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
restore_lines=$(wc -l <"$dir/data/standalone/journal.txt")
kill -9 "$(cdp_pid demo-standalone)"
pause 9

say "Fault 1b: kill -9 demo-pushed's CDP process. The agent reports the crash at once; the answer to that report asks for a restart (with the generation it saw), the agent does it and reports again: RESTARTING, then OK, though the monitor never called the agent."
kill -9 "$(cdp_pid demo-pushed)"
pause 6

say "Fault 2: cluster failover. demo-node-a becomes passive, demo-node-b active. Vigil starts CDP on demo-node-b first and stops it on demo-node-a only once it runs on demo-node-b: never a moment without CDP, never two writers. demo-node-a ends in STANDBY."
echo passive >"$dir/demo-node-a/role"
echo active >"$dir/demo-node-b/role"
pause 14

say "Fault 3: the replicator on demo-standalone keeps crashing. After more than 2 successful restarts within 2 minutes the flap guard suspends auto-restart: DEGRADED, with an event saying so (a person restarts it from Grafana or the window passes)."
for _ in 1 2 3; do
  pid=$(cdp_pid demo-standalone)
  [[ -n $pid ]] && kill -9 "$pid"
  pause 4
done
pause 4

say "Fault 4: stop the agent on demo-node-b (the active node). Silent but within its budget it is GRACE, the reason says which allowance is being spent; past 14 s it is FAILED, with a diagnosis of where the path breaks (DNS, TCP, HTTP, ICMP echo where allowed, a path trace). Then the fleet's handler reset-vm runs, once: a corrective action beyond a restart (none runs during the GRACE)."
kill "$pid_demo_node_b"
pause 22
say "reset-vm ran and said: $(cat "$dir/handler.log" 2>/dev/null || echo '(nothing yet)')"

say "Recovery: demo-node-b's agent comes back; its CDP process starts again (it is still the active node) and the agent is OK."
start_agent demo-node-b
wait_healthy demo-node-b
pause 10

kill "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
watch_pid=

say "Point-in-time restore: demo-standalone's data as it was just before Fault 1 ($restore_point), from its store: vigil-agent restore --store ... --at $restore_point --to restored/"
node agent/dist/cli.js restore --store "$dir/store/standalone" --at "$restore_point" --to "$dir/restored"
echo "journal.txt now:      $(wc -l <"$dir/data/standalone/journal.txt") lines"
echo "journal.txt restored: $(wc -l <"$dir/restored/journal.txt") lines (it had $restore_lines when the restore point was taken)"
echo "its last line then:   $(tail -n 1 "$dir/restored/journal.txt")"
node agent/dist/cli.js versions --store "$dir/store/standalone" --path report-1.txt | tail -n 3

if [[ ${DEMO_STAY:-} == 1 ]]; then
  say "DEMO_STAY=1: the three agents keep running on 127.0.0.1:$base_port-$((base_port + 2)) (tokens: $read_token / $control_token) for Grafana (docs/install.md, 'With Docker'). Ctrl-C ends them."
  while :; do sleep 3600; done
fi

say "Done. Every state change and action above is kept in $keep/history: bin/vigil history --history $keep/history (--json for JSON lines). See docs/engine.md and docs/replicator.md."
