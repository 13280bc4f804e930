#!/usr/bin/env bash
# The benchmark plots (bench/plots.py) render from small committed fixtures, the JSON writers
# the bench scripts call produce what the renderer reads, and every image docs/BENCHMARKS.md
# links exists. No privileges; needs python3-matplotlib (ci/install-deps.sh).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PLOTS=$ROOT/bench/plots.py

# A python3 earlier in PATH (pyenv) may lack the Debian package's matplotlib.
PY=
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import matplotlib' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "FAIL: no python3 with matplotlib (apt-get install python3-matplotlib)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/mlink-test-plots.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# check_png FILE...: a PNG of a real figure: large enough, mostly but not only white, with
# several colours (axes, text, one line or bar colour per system).
check_png() {
  "$PY" - "$@" <<'PY'
import sys
import matplotlib.image as mpimg
import numpy as np
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    img = mpimg.imread(path)[:, :, :3]
    h, w = img.shape[:2]
    assert h >= 300 and w >= 500, f"{path}: {w}x{h} pixels, too small"
    ink = float((img.min(axis=2) < 0.9).mean())
    assert 0.02 < ink < 0.7, f"{path}: {ink:.1%} of the pixels are not white"
    colours = {tuple(c) for c in (img.reshape(-1, 3)[::7] * 255).astype(int).tolist()}
    assert len(colours) >= 20, f"{path}: only {len(colours)} colours"
    # mlink's and ECMP's lines or bars are drawn (tab:blue, tab:orange), not only the axes.
    px = (img * 255).astype(int)
    for name, rgb in (("tab:blue", (31, 119, 180)), ("tab:orange", (255, 127, 14))):
        n = int((np.abs(px - rgb).max(axis=2) < 12).sum())
        assert n >= 200, f"{path}: {n} pixels of {name}"
    print(f"ok {path}: {w}x{h}, {ink:.1%} ink, {len(colours)} colours")
PY
}

echo "== render the committed fixtures"
for kind in failover goodput; do
  "$PY" "$PLOTS" render "$kind" "$HERE/fixtures/$kind.json" "$TMP/$kind.png"
done
check_png "$TMP/failover.png" "$TMP/goodput.png"

echo "== goodput: bench_tput lines (bench/run.sh) -> JSON -> plot"
cat >"$TMP/raw" <<'EOF'
bench_tput case=single_link parallel=4 mbps=191.4 runs=191.4,191.5 links_used=1,1 retransmits=0,0
bench_tput case=single_link parallel=4 mbps=100.0 runs=100.0,100.0 links_used=1,1 retransmits=0,0
bench_tput case=ecmp parallel=4 mbps=382.9 runs=382.9,574.3 links_used=2,3 retransmits=0,0
bench_tput case=mlink parallel=4 mbps=574.3 runs=574.3,574.4 links_used=3,3 retransmits=0,1 reorder=5,6 dsack=1,2 undo=0,1 qdisc_drops=3,4 rx_drops=0,0 cpu_s_per_gbit=0.52,0.61
EOF
"$PY" "$PLOTS" goodput --input "$TMP/raw" --json "$TMP/goodput-raw.json" --png "$TMP/goodput-raw.png" \
  --links 3 --rate-mbps 200 --seconds 10 --repeats 2 --command test --load-start "0.1 0.2 0.3 1/1 1"
"$PY" - "$TMP/goodput-raw.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
r = {x["case"]: x for x in d["results"]}
assert sorted(r) == ["ecmp", "mlink", "single_link"], r
assert r["single_link"]["median_mbps"] == 100.0, "the last line of a case must win"
assert r["ecmp"]["runs_mbps"] == [382.9, 574.3] and r["mlink"]["retransmits"] == [0, 1], r
assert r["mlink"]["qdisc_drops"] == [3, 4] and r["mlink"]["dsack"] == [1, 2], r
assert r["mlink"]["cpu_s_per_gbit"] == [0.52, 0.61] and r["ecmp"]["reorder"] == [], r
assert d["meta"]["load_start"] == [0.1, 0.2, 0.3] and d["meta"]["links"] == 3, d["meta"]
PY
check_png "$TMP/goodput-raw.png"

echo "== failover: iperf3 JSON (bench/failover_case.sh) -> one case each -> JSON -> plot"
"$PY" - "$TMP" <<'PY'
import json, sys
# iperf3 -J --get-server-output, reduced to what the series reads: receiver intervals. ECMP:
# 2 of 8 streams stall from the fault (t=3 s) to t=10 s; mlink: none.
for mode in ("mlink", "ecmp"):
  ivs = []
  for i in range(30):
    t0 = i * 0.5
    stall = mode == "ecmp" and 6 <= i < 20
    streams = [{"socket": 5 + s, "start": t0, "end": t0 + 0.5, "seconds": 0.5, "bytes": 0,
                "bits_per_second": 0.0 if stall and s >= 6 else 70e6} for s in range(8)]
    total = sum(s["bits_per_second"] for s in streams)
    ivs.append({"streams": streams, "sum": {"start": t0, "end": t0 + 0.5, "seconds": 0.5,
                                            "bytes": int(total / 16), "bits_per_second": total}})
  json.dump({"start": {"test_start": {"reverse": 0}}, "intervals": ivs,
             "server_output_json": {"intervals": ivs}, "end": {}},
            open(f"{sys.argv[1]}/iperf-{mode}.json", "w"))
PY
mkdir "$TMP/cases"
for mode in mlink ecmp; do
  "$PY" "$PLOTS" series "$TMP/iperf-$mode.json" --fault-s 3.01 --repair-s 7 --out "$TMP/cases/$mode.json" \
    --summary "bench_failover mode=$mode fault=oneway detect_a_ms=80 detect_b_ms=90 stalled=2"
done
"$PY" "$PLOTS" failover --cases "$TMP/cases" --json "$TMP/failover-cases.json" \
  --png "$TMP/failover-cases.png" --links 3 --rate-mbps 200 --command test
"$PY" - "$TMP/failover-cases.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert sorted(r["mode"] for r in d["runs"]) == ["ecmp", "mlink"], d["runs"]
r = {x["mode"]: x for x in d["runs"]}
e = r["ecmp"]
s = e["stalled_streams"]
assert len(e["t_end_s"]) == len(e["mbps"]) == len(s) == 30 and e["stalled"] == 2, e
assert s[5] == 0 and s[6] == 2 and s[20] == 0, s
assert e["mbps"][0] == 560.0 and e["mbps"][6] == 420.0, e
assert max(r["mlink"]["stalled_streams"]) == 0, r["mlink"]
assert e["streams"] == 8 and e["detect_b_ms"] == 90 and e["fault_s"] == 3.01, e
PY
check_png "$TMP/failover-cases.png"

echo "== every image docs/BENCHMARKS.md links exists"
doc=$ROOT/docs/BENCHMARKS.md
mapfile -t images < <(grep -oE '!\[[^]]*\]\([^)]+\)' "$doc" | sed -E 's/.*\(([^)]+)\)/\1/')
((${#images[@]} > 0)) || { echo "FAIL: no image in $doc" >&2; exit 1; }
missing=0
for img in "${images[@]}"; do
  if [ -s "$ROOT/docs/$img" ]; then
    echo "ok $img"
  else
    echo "FAIL: $doc links $img, which does not exist (or is empty)" >&2
    missing=$((missing + 1))
  fi
done
for want in failover.png goodput.png; do
  [[ " ${images[*]} " == *"/bench/results/$want "* ]] ||
    { echo "FAIL: $doc does not embed bench/results/$want" >&2; missing=$((missing + 1)); }
done
((missing == 0))
echo "PASS: bench plots"
