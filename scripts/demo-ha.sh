#!/usr/bin/env bash
# `make demo-ha`: two vigil watch members divide four agents between them and share one history in
# PostgreSQL (docs/ha.md), all on loopback. The script starts a private PostgreSQL server in a
# temporary folder (Debian's postgresql package; as root it runs as the postgres user), four
# vigil-agents each supervising a CDP process (a plain command), and the two members, then:
#   - shows which member polls which agents (rendezvous hashing over the live members);
#   - kills a CDP process: its owner restarts it;
#   - kill -9 of a member: after about 7 s the other polls every agent; a CDP process killed
#     meanwhile is restarted once, by the member left;
#   - the member comes back: the agents are divided again;
#   - a graceful stop of the other: the first takes its agents over at once;
#   - vigil history reads what both members recorded, from PostgreSQL.
#
# Settings (environment variables):
#   DEMO_HA_PORT      first of the loopback ports (default 7181: agents 7181-7184, gossip 7191-7192,
#                     PostgreSQL 7195)
#   DEMO_HA_POSTGRES  a connection string to use an existing database instead of a private server
#   DEMO_PACE         stretches the waits (default 1)
# Everything lives in a temporary folder removed on exit; a failed run keeps it and says where.
set -euo pipefail
cd "$(dirname "$0")/.."

pace=${DEMO_PACE:-1}
vigil=${VIGIL_BIN:-bin/vigil}
base=${DEMO_HA_PORT:-7181}
dir=$(mktemp -d -t vigil-demo-ha.XXXXXX)
chmod 755 "$dir"
pids=()
pg_ctl_cmd=()

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ ${#pg_ctl_cmd[@]} -gt 0 ]]; then
    "${pg_ctl_cmd[@]}" -D "$dir/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [[ $status -ne 0 && $status -ne 130 ]]; then
    echo "demo-ha: failed (exit $status); its files and logs are kept in $dir" >&2
  else
    rm -rf "$dir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $base =~ ^[0-9]+$ && $base -ge 1024 && $base -le 65500 ]] || {
  echo "demo-ha: DEMO_HA_PORT=$base is not a port between 1024 and 65500" >&2
  exit 2
}

# shellcheck source=demo-common.sh
. scripts/demo-common.sh
agents=(ha-1 ha-2 ha-3 ha-4)
port_of() { echo $((base + ${1#ha-} - 1)); }
gossip_of() { echo $((base + 9 + $1)); }
pg_port=$((base + 14))

for p in $(seq "$base" $((base + 3))) "$(gossip_of 1)" "$(gossip_of 2)" "$pg_port"; do
  if port_taken "$p"; then
    echo "demo-ha: 127.0.0.1:$p is already in use; run on other ports: DEMO_HA_PORT=17181 make demo-ha" >&2
    exit 1
  fi
done

# PostgreSQL: an existing database, or a private server in the temporary folder.
if [[ -n ${DEMO_HA_POSTGRES:-} ]]; then
  dsn=$DEMO_HA_POSTGRES
else
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -z $pg_bin || ! -x $pg_bin/pg_ctl ]]; then
    echo "demo-ha: needs PostgreSQL's server programs (Debian: apt-get install postgresql; .ci/run installs them" >&2
    echo "demo-ha: without a default cluster), or DEMO_HA_POSTGRES=postgres://user@host/db for an existing database." >&2
    exit 2
  fi
  as=()
  mkdir -p "$dir/pg"
  if [[ $(id -u) -eq 0 ]]; then
    # PostgreSQL refuses to run as root.
    chown postgres "$dir/pg"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$pg_bin/initdb" -D "$dir/pg/data" -U vigil -A trust >"$dir/pg/initdb.log" 2>&1
  pg_ctl_cmd=("${as[@]}" "$pg_bin/pg_ctl")
  "${pg_ctl_cmd[@]}" -D "$dir/pg/data" -l "$dir/pg/server.log" -w \
    -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1" start >/dev/null
  dsn="postgres://vigil@127.0.0.1:$pg_port/postgres?sslmode=disable"
fi

write_agent() {
  local name=$1
  mkdir -p "$dir/$name"
  cat >"$dir/$name/agent.yaml" <<AGENT
listen: "127.0.0.1:$(port_of "$name")"
stateDir: "$dir/$name/state"
auth: { readToken: "$read_token", controlToken: "$control_token" }
processes:
  - { name: cdp, kind: command, command: [sleep, "100000"], stopTimeout: 1s, autoRestart: false }
AGENT
}

start_agent() {
  node agent/dist/cli.js run --config "$dir/$1/agent.yaml" 2>>"$dir/$1/agent.log" &
  pids+=($!)
}

status_of() {
  curl -fs -H "Authorization: Bearer $read_token" "http://127.0.0.1:$(port_of "$1")/v1/status" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const p=JSON.parse(s).processes.find(p=>p.name==="cdp");console.log(p?`${p.pid||""} ${p.generation}`:"")})'
}
cdp_pid() { status_of "$1" | cut -d' ' -f1; }
cdp_generation() { status_of "$1" | cut -d' ' -f2; }

wait_healthy() {
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$(port_of "$1")/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "demo-ha: the agent $1 did not start; its log:" >&2
  cat "$dir/$1/agent.log" >&2
  exit 1
}

{
  echo "pollInterval: 1s"
  echo "defaults:"
  echo "  readToken: \"$read_token\""
  echo "  controlToken: \"$control_token\""
  echo "  budget: { responseTime: 1s, processing: 1s, failover: 10s, restart: 10s, networkInterruption: 10s, appErrorRecovery: 10s, combine: max }"
  echo "  autoRestart: { enabled: true, backoffInitial: 1s, backoffMax: 5s }"
  echo "history:"
  echo "  postgres: \"$dsn\""
  echo "  scope: demo-ha"
  echo "cluster:"
  echo "  join: [\"127.0.0.1:$(gossip_of 1)\", \"127.0.0.1:$(gossip_of 2)\"]"
  echo "agents:"
  for a in "${agents[@]}"; do
    echo "  - { name: $a, url: \"http://127.0.0.1:$(port_of "$a")\" }"
  done
} >"$dir/fleet.yaml"

declare -A member_pid
start_member() {
  local n=$1
  "$vigil" watch --config "$dir/fleet.yaml" --history "$dir/member-$n" \
    --cluster-bind "127.0.0.1:$(gossip_of "$n")" --cluster-name "member-$n" \
    >>"$dir/member-$n.log" 2>>"$dir/member-$n.err" &
  member_pid[$n]=$!
  pids+=($!)
}

# The latest cluster line of a member's table: who it sees and how many agents it polls.
cluster_line() { grep '^cluster: ' "$dir/member-$1.log" 2>/dev/null | tail -n 1 || true; }
show_members() {
  for n in "$@"; do echo "member-$n: $(cluster_line "$n")"; done
}
say "PostgreSQL at ${dsn%%\?*}; four vigil-agents on 127.0.0.1:$base-$((base + 3)), each supervising a CDP process."
for a in "${agents[@]}"; do write_agent "$a"; start_agent "$a"; done
for a in "${agents[@]}"; do wait_healthy "$a"; done

say "Two vigil watch members share the history in PostgreSQL and divide the agents (gossip on 127.0.0.1:$(gossip_of 1) and :$(gossip_of 2)): each agent is polled by one member only."
start_member 1
start_member 2
pause 6
show_members 1 2

say "kill -9 ha-1's CDP process: the member that owns ha-1 restarts it (generation $(cdp_generation ha-1) -> ...)."
kill -9 "$(cdp_pid ha-1)"
pause 4
echo "ha-1's CDP is at generation $(cdp_generation ha-1) now."
grep -h "restart" "$dir/member-1.log" "$dir/member-2.log" | grep ha-1 | tail -n 2 || true

say "kill -9 member-1, and at once kill ha-2's and ha-3's CDP processes. member-2 notices member-1 is gone (about 7 s with the default gossip settings), takes its agents over from the shared records and restarts each CDP process once."
gen2=$(cdp_generation ha-2) gen3=$(cdp_generation ha-3)
{
  kill -9 "${member_pid[1]}"
  wait "${member_pid[1]}"
} 2>/dev/null || true
kill -9 "$(cdp_pid ha-2)" "$(cdp_pid ha-3)"
pause 12
show_members 2
echo "ha-2's CDP: generation $gen2 -> $(cdp_generation ha-2); ha-3's: $gen3 -> $(cdp_generation ha-3) (one restart each)."

say "member-1 comes back: it joins, and the agents are divided again."
start_member 1
pause 6
show_members 1 2

say "Stop member-2 gracefully (SIGTERM): it leaves the cluster, and member-1 polls its agents at once."
kill "${member_pid[2]}"
wait "${member_pid[2]}" 2>/dev/null || true
pause 3
show_members 1

say "Everything both members recorded is in one place: bin/vigil history --history-postgres ... --history-scope demo-ha"
"$vigil" history --history-postgres "$dsn" --history-scope demo-ha | tail -n 15

say "Done. docs/ha.md sets this up for Grafana replicas (jsonData history.postgres and cluster, VIGIL_CLUSTER_ADVERTISE)."
