#!/usr/bin/env bash
# need.sh TARGET PROGRAM...: stops at once, saying what is missing and how to get it, when a
# program a make target needs is not installed (the README's prerequisites list them all).
set -euo pipefail
target=$1
shift
missing=() pkgs=()
for p in "$@"; do
  case $p in
    chromium) [[ -x /usr/bin/chromium ]] || missing+=("chromium (the browser tests run Debian's /usr/bin/chromium)") ;;
    zip) command -v zip >/dev/null || missing+=("zip (make package zips dist/)") ;;
    rsync) command -v rsync >/dev/null || missing+=("rsync (the replicator benchmark compares with rsync's scan)") ;;
    postgresql) compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || missing+=("postgresql (the shared-history tests start private PostgreSQL servers; install it without its default cluster: echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf first)") ;;
    *) command -v "$p" >/dev/null || missing+=("$p") ;;
  esac
  ((${#missing[@]} == ${#pkgs[@]})) || pkgs+=("$p")
done
((${#missing[@]} == 0)) && exit 0
{
  echo "make $target: missing:"
  for m in "${missing[@]}"; do echo "  - $m"; done
  echo "Install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkgs[*]}"
  echo "(.ci/run installs them on a CI machine.)"
} >&2
exit 1
