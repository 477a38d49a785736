#!/usr/bin/env bash
# run-clean.sh COMMAND [ARGS...]: runs COMMAND (make test's steps) with TMPDIR set to a fresh folder
# and VIGIL_TEST_RUN=<id> in its environment, then fails when the run left anything behind: a
# process that still carries the marker (an agent, a CDP process, a browser), or anything in the
# run's TMPDIR. Leftovers are listed, then ended and removed, so that the next run starts clean.
set -uo pipefail
parent=${TMPDIR:-/tmp}
run=$(mktemp -d "$parent/vigil-test-run.XXXXXX")
id=$(basename "$run")
# Like /tmp: tests that drop to another user (uid 65534) must reach their folders in it.
chmod 0755 "$run"
mkdir -m 1777 "$run/tmp"

# Caches of tools, not of the tests: tsx and v8-compile-cache (webpack's config loader) keep their
# compile caches in the temporary folder.
allowed='^(tsx|v8-compile-cache)-[0-9]+$'

TMPDIR="$run/tmp" VIGIL_TEST_RUN=$id "$@"
status=$?

# Processes of the run: every one whose environment carries the marker.
marked() {
  local e pid
  for e in /proc/[0-9]*/environ; do
    pid=${e#/proc/}
    pid=${pid%/environ}
    if grep -qz -x "VIGIL_TEST_RUN=$id" "$e" 2>/dev/null; then echo "$pid"; fi
  done
}
left=()
for _ in $(seq 50); do # processes being stopped get 5 s to go
  mapfile -t left < <(marked)
  ((${#left[@]} == 0)) && break
  sleep 0.1
done
problems=0
if ((${#left[@]})); then
  echo "make test: the run left ${#left[@]} process(es) running:" >&2
  for pid in "${left[@]}"; do
    echo "  pid $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | cut -c1-200)" >&2
  done
  kill -KILL "${left[@]}" 2>/dev/null
  problems=1
fi
mapfile -t files < <(find "$run/tmp" -mindepth 1 -maxdepth 1 -printf '%f\n' | grep -Ev "$allowed")
if ((${#files[@]})); then
  echo "make test: the run left ${#files[@]} entr(y/ies) in its temporary folder:" >&2
  for f in "${files[@]:0:20}"; do echo "  $f" >&2; done
  problems=1
fi
rm -rf "$run"
if ((status != 0)); then exit "$status"; fi
if ((problems)); then
  echo "make test: failed: tests must end every process they start and remove what they create" >&2
  exit 1
fi
echo "make test: nothing left behind (no process of the run, nothing in its temporary folder)"
