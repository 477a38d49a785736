#!/usr/bin/env bash
# Runs Grafana's plugin validator (plugincheck2) on the plugin package offline, one analyzer at a
# time, and prints one line per analyzer: what it reported, by severity and rule ("no report": it found
# nothing and has no ok result to report), and where it stopped for want of a network.
#
#   scripts/plugin-validator-offline.sh vigil-cdp-app-<version>.zip [GIT-REF]
#
# plugincheck2 is taken from $PLUGINCHECK2, PATH or $(go env GOPATH)/bin (see
# docs/plugin-package-check.md for building it). -sourceCodeUri gets a clean export of GIT-REF
# (default HEAD), as a reviewer would check it out. Each run is in a network namespace of its own
# (unshare -n, needs root), so no analyzer reaches the network. The exit status is 1 if any
# analyzer reported an error. Runs in a temporary directory that is removed afterwards.
set -euo pipefail

zip=${1:?usage: $0 vigil-cdp-app-<version>.zip [GIT-REF]}
ref=${2:-HEAD}
[[ -f $zip ]] || { echo "no such package: $zip (make package builds it)" >&2; exit 2; }
bin=${PLUGINCHECK2:-$(command -v plugincheck2 || echo "$(go env GOPATH)/bin/plugincheck2")}
[[ -x $bin ]] || { echo "plugincheck2 not found (set PLUGINCHECK2)" >&2; exit 2; }
unshare -n true 2>/dev/null || { echo "unshare -n failed: run as root to isolate the validator from the network" >&2; exit 2; }

# The validator's analyzers (pkg/analysis/passes at plugin-validator v0.45.6, commit a7e38aae).
analyzers=(archive archivename backendbinary backenddebug binarypermissions brokenlinks buildtools
  changelog checksum circulardependencies codediff code-rules discoverability go-manifest go-sec
  govulncheck grafanadependency includesnested jargon jsMap legacybuilder legacyplatform license
  llmreview logos manifest metadata metadatapaths metadataschema metadatavalid modulejs nestedmetadata
  org osv-scanner packagejson plugindocs pluginname provenance published-plugin reactcompat readme
  restrictivedep safelinks screenshots sdkusage signature sourcecode sponsorshiplink templatereadme
  trackingscripts typesuffix unsafesvg version virusscan)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT PIPE TERM
mkdir "$work/src" "$work/tmp" "$work/out"
git -C "$(dirname "$0")/.." archive "$ref" | tar -x -C "$work/src"
# reportAll: analyzers that can say so report what passed (severity ok) too.
printf 'global:\n  enabled: true\n  jsonOutput: false\n  reportAll: true\n' >"$work/config.yaml"
cp "$zip" "$work/"
name=$(basename "$zip")

errors=0
for a in "${analyzers[@]}"; do
  # The validator writes its extracted copies under TMPDIR and leaves them: keep them in $work.
  (cd "$work" && DEBUG=1 TMPDIR="$work/tmp" unshare -n "$bin" -config config.yaml -analyzer "$a" -sourceCodeUri "file://$work/src" \
    -output-to-file "out/$a.json" "$name" >"out/$a.log" 2>&1) || true
  stopped=$(grep -m1 -o 'check failed: .*' "$work/out/$a.log" | cut -c1-120 || true)
  reports=""
  if [[ -s $work/out/$a.json ]]; then
    reports=$(jq -r '[."plugin-validator" // {} | to_entries[] | .key as $k | .value[] | "\(.Severity) \($k)/\(.Name)"]
      | group_by(.) | map("\(length) \(.[0])") | join(", ")' "$work/out/$a.json")
  fi
  printf '%-22s %s%s\n' "$a" "${reports:-no report}" "${stopped:+; stopped offline: $stopped}"
  if [[ -s $work/out/$a.json ]] &&
    jq -e '[."plugin-validator" // {} | .[][] | select(.Severity == "error")] | length > 0' "$work/out/$a.json" >/dev/null; then
    errors=$((errors + 1))
    jq -r '."plugin-validator" // {} | .[][] | select(.Severity == "error") | "    \(.Title)"' "$work/out/$a.json"
  fi
done
((errors == 0)) || { echo "$errors analyzer(s) reported errors"; exit 1; }
