#!/usr/bin/env bash
# Failover benchmark: the failure matrix's topology and faults (bench/failover_case.sh), each
# run with mlink (flow and flowlet mode), kernel ECMP and MPTCP on the same links in one run,
# interleaved. Reports per
# fault: time from the failure to each end's map update (agent log timestamps), streams below
# 1 Mbit/s for more than 1 s and the longest such stall, and the aggregate before / during /
# after, with ECMP's figures beside mlink's. Targets (issue 4): one-way drop detected on both
# ends within 150 ms; no stream stalled for more than 1 s.
# Writes every case's per-interval aggregate to FO_BENCH_JSON and plots the one-way fault's
# (aggregate Mbit/s against time, mlink and ECMP) to FO_BENCH_PNG (needs python3-matplotlib).
# Usage: sudo bench/failover.sh   Env: FO_BENCH_FAULTS ("oneway admin_down_sender
#   admin_down_receiver loss30 flap"), FO_BENCH_MODES ("mlink mlink_flowlet ecmp mptcp"),
#   FO_BENCH_REPEATS (1), BENCH_OUT (raw lines, appended),
#   FO_BENCH_JSON (bench/results/failover.json), FO_BENCH_PNG (the JSON's name, .png),
#   MLINK_BUILD_DIR.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MLINK_BUILD_DIR=${MLINK_BUILD_DIR:-$BENCH_DIR/../build}
FAULTS=${FO_BENCH_FAULTS:-"oneway admin_down_sender admin_down_receiver loss30 flap"}
REPEATS=${FO_BENCH_REPEATS:-1}
MODES=${FO_BENCH_MODES:-"mlink mlink_flowlet ecmp mptcp"}
BENCH_OUT=${BENCH_OUT:-$(mktemp /tmp/mlink-failover.XXXXXX)}
JSON=${FO_BENCH_JSON:-$BENCH_DIR/results/failover.json}
PNG=${FO_BENCH_PNG:-${JSON%.json}.png}
read -r LOAD_START < /proc/loadavg
SERIES=$(mktemp -d /tmp/mlink-failover-series.XXXXXX)
trap 'rm -rf "$SERIES"' EXIT

failed=0
for ((r = 1; r <= REPEATS; r++)); do
  for fault in $FAULTS; do
    for mode in $MODES; do
      echo "== run $r/$REPEATS: $mode, $fault" >&2
      log=$(mktemp /tmp/mlink-failover-case.XXXXXX)
      if FO_SERIES_OUT="$SERIES/$fault-$r-$mode.json" bash "$BENCH_DIR/failover_case.sh" "$mode" "$fault" \
        >"$log" 2>&1; then
        grep '^bench_failover ' "$log" | tee -a "$BENCH_OUT"
      else
        echo "  case failed; its output:" >&2
        sed 's/^/    /' "$log" >&2
        failed=$((failed + 1))
      fi
      rm -f "$log"
    done
  done
done

python3 - "$BENCH_OUT" "$MODES" <<'PY'
import re, statistics, sys
modes = sys.argv[2].split()
rows = {}
for line in open(sys.argv[1]):
    if not line.startswith("bench_failover "):
        continue
    kv = dict(re.findall(r"(\w+)=(\S+)", line))
    rows.setdefault((kv["fault"], kv["mode"]), []).append(kv)

def med(runs, key):
    vals = [float(r[key]) for r in runs if r.get(key, "-") not in ("-", "?", "")]
    if not vals:
        return "-"
    m = statistics.median(vals)
    return f"{m:.0f}" if key.endswith("_ms") or key in ("stalled", "stalled_half", "retransmits") else f"{m:.2f}" if key == "longest_stall_s" else f"{m:.1f}"

def worst(runs, key):
    vals = [float(r[key]) for r in runs if r.get(key, "-") not in ("-", "?", "")]
    return max(vals) if vals else None

print("\n== failover: median over runs (worst in brackets); Mbit/s are the receivers' sum")
hdr = ("fault", "mode", "detect a ms", "detect b ms", "back a ms", "back b ms",
       "stalled >1s", "stalled >=0.5s", "longest stall s", "before", "during", "after", "during/before")
print(" | ".join(hdr))
ok = True
for fault in dict.fromkeys(f for f, _ in rows):
    for mode in modes:
        runs = rows.get((fault, mode))
        if not runs:
            continue
        cells = [fault, mode]
        for k in ("detect_a_ms", "detect_b_ms", "back_a_ms", "back_b_ms", "stalled", "stalled_half",
                  "longest_stall_s"):
            w = worst(runs, k)
            cells.append(med(runs, k) + (f" ({w:g})" if w is not None and len(runs) > 1 else ""))
        for k in ("before", "during", "after"):
            cells.append(med(runs, k))
        b, d = med(runs, "before"), med(runs, "during")
        cells.append(f"{float(d) / float(b):.3f}" if "-" not in (b, d) else "-")
        print(" | ".join(cells))
        if mode.startswith("mlink"):
            if (worst(runs, "stalled") or 0) > 0:
                print(f"  TARGET MISSED: {fault}: a stream stalled for more than 1 s")
                ok = False
            if fault == "oneway":
                for k in ("detect_a_ms", "detect_b_ms"):
                    w = worst(runs, k)
                    if w is None or w > 150:
                        print(f"  TARGET MISSED: oneway {k} {w} > 150 ms")
                        ok = False
print("targets (one-way drop <= 150 ms on both ends, 0 streams stalled > 1 s):",
      "met" if ok else "MISSED")
PY
echo "raw results: $BENCH_OUT"

# The plot needs matplotlib (apt: python3-matplotlib), which a python3 earlier in PATH may lack.
PY=python3
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import matplotlib' 2>/dev/null; then PY=$p; break; fi
done
"$PY" "$BENCH_DIR/plots.py" failover --cases "$SERIES" --json "$JSON" --png "$PNG" \
  --links 3 --rate-mbps 200 --seconds 15 --repeats "$REPEATS" --load-start "$LOAD_START" \
  --command "sudo FO_BENCH_FAULTS='$FAULTS' FO_BENCH_MODES='$MODES' FO_BENCH_REPEATS=$REPEATS bench/failover.sh"
exit $((failed > 0))
