#!/usr/bin/env bash
# Scale benchmark (issue 11, "Cluster scale"): one real mlinkd facing N simulated mlink peers
# × 4 links (bench/sim: topology protocol with keys, authenticated BFD, echo reflected by the
# project's ml_ingress), BFD 30 ms × 3. For each N (bench/scale_case.sh, a fresh bed each):
# time to converge from the agent's start, steady-state agent CPU and RSS, one-way failure
# detection toward one simulated peer on one link, the agent's time to rewrite every entry
# after a local carrier loss. Writes JSON, prints a Markdown table, plots CPU and RSS vs peers.
# Usage: sudo bench/scale.sh [OUT.json]       (default bench/results/scale.json)
# Env: SCALE_PEERS ("10 100 300 1000"), SCALE_PNG (OUT.json with .png), SCALE_LOG_DIR (logs of
#   every run, default a new /tmp/mlink-scale-logs.*: a flapping agent logs tens of MB), the
#   SCALE_* of scale_case.sh (SCALE_PERF=1: perf profile of the agent), MLINK_BUILD_DIR.
# Build first: cmake --build build --target mlinkd mlinkctl mlink_sim
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MLINK_BUILD_DIR=${MLINK_BUILD_DIR:-$BENCH_DIR/../build}
OUT=${1:-$BENCH_DIR/results/scale.json}
PNG=${SCALE_PNG:-${OUT%.json}.png}
export SCALE_LOG_DIR=${SCALE_LOG_DIR:-$(mktemp -d /tmp/mlink-scale-logs.XXXXXX)}
PEERS=${SCALE_PEERS:-"10 100 300 1000"}
mkdir -p "$(dirname "$OUT")" "$SCALE_LOG_DIR"
RAW=$(mktemp /tmp/mlink-scale.XXXXXX)
trap 'rm -f "$RAW"' EXIT

failed=0
for n in $PEERS; do
  # Every run is bounded: bed, convergence, CPU window, faults, teardown.
  bound=$((240 + n / 4))
  echo "== $n simulated peers × ${SCALE_LINKS:-4} links (at most ${bound} s)" >&2
  log=$SCALE_LOG_DIR/case-$n.log
  if timeout -k 10 "$bound" bash "$BENCH_DIR/scale_case.sh" "$n" >"$log" 2>&1; then
    :
  else
    echo "  run failed (rc $?); last lines of $log:" >&2
    tail -15 "$log" | sed 's/^/    /' >&2
    failed=$((failed + 1))
  fi
  grep '^bench_scale ' "$log" | tee -a "$RAW" >&2 || true
done

# The plot needs matplotlib (apt: python3-matplotlib), which a python3 earlier in PATH may lack.
PY=python3
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import matplotlib' 2>/dev/null; then PY=$p; break; fi
done
"$PY" "$BENCH_DIR/scale_report.py" report --input "$RAW" --json "$OUT" --png "$PNG"
echo "logs: $SCALE_LOG_DIR" >&2
exit $((failed > 0))
