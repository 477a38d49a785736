#!/usr/bin/env bash
# with-progress.sh "WHAT" COMMAND [ARGS...]: runs COMMAND, saying "WHAT" at the start and then
# every 15 s while it runs, so that no step of `make demo` is silent for long (a first run builds
# the CLI, downloading its Go modules, and installs the agent's npm packages). Exits with the
# command's status.
set -uo pipefail
what=$1
shift
start=$SECONDS
echo "==> $what"
"$@" &
pid=$!
trap 'kill "$pid" 2>/dev/null; exit 130' INT TERM
while kill -0 "$pid" 2>/dev/null; do
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break 2
    sleep 0.1
  done
  echo "    ... still $what ($((SECONDS - start)) s)"
done
wait "$pid"
status=$?
[[ $status -eq 0 ]] || echo "==> failed ($status): $what" >&2
exit $status
