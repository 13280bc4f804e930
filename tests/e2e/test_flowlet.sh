#!/usr/bin/env bash
# Flowlet mode (issue 15, acceptance 2 in part): 3 × 200 Mbit/s links, `spread = "flowlet"`
# on both ends, ONE iperf3 TCP flow a -> b. Per-flow hashing would put it on one link; in
# flowlet mode each link must carry >= 20 % of its bytes, with no stream error. Both entries
# show the mode (and its default socket_queue_limit) in the pinned maps. Asserts placement,
# not speed (bench/ measures goodput).
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 3 200mbit
ML_NODE_TOML='spread = "flowlet"'
ml_start a "$(ml_config a 1 2 3)"
ml_start b "$(ml_config b 2 1 3)"
ml_wait_links a b
for h in a b; do
  ml_peers_json "$h" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    assert e["spread"] == "flowlet" and e["flowlet_gap_us"] == 100, e
    assert e["socket_queue_limit"] == 65536, e  # the flowlet mode default' ||
    bed_die "$h: the peer entries are not in flowlet mode"
done
bed_iperf_server b 5201
before=$(ml_slot_packets_of a 10.88.0.2)
bed_iperf a 10.88.0.2 1 5 "$BED_TMP/iperf.json" -p 5201 || bed_die "iperf3 (one flow)"
after=$(ml_slot_packets_of a 10.88.0.2)
echo "  one flow: $(bed_iperf_mbps "$BED_TMP/iperf.json") Mbit/s received (3 × 200 Mbit/s links)"
python3 - "$before" "$after" <<'PY' || bed_die "a link carried under 20 % of the one flow's bytes"
import sys
b0, b1 = sys.argv[1].split("\n"), sys.argv[2].split("\n")
delta = {l0.split()[0]: int(l1.split()[2]) - int(l0.split()[2]) for l0, l1 in zip(b0, b1)}
total = sum(delta.values())
shares = {k: v / total for k, v in delta.items()}
print("  bytes by link: " + " ".join(f"{k} {s:.0%}" for k, s in sorted(shares.items())))
sys.exit(0 if min(shares.values()) >= 0.20 else 1)
PY
echo "PASS: one TCP flow over every link in flowlet mode"
