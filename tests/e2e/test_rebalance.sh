#!/usr/bin/env bash
# Load-aware placement: 4 TCP flows over 3 links. Hashing alone leaves a link
# without a flow in 56 % of runs; the agent moves busy buckets so that every
# link carries a share of the bytes in every run. Asserts placement, not speed.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 3 200mbit
ml_start a "$(ml_config a 1 2 3)"
ml_start b "$(ml_config b 2 1 3)"
ml_wait_links a b
bed_iperf_server b 5201
# Each run's client ports are fixed (placement depends on them), so they are kept out of a's
# ephemeral range: iperf3's control connection once took one, and a stream failed to bind.
bed_reserve_ports a 40000-40127

for run in 1 2 3 4 5; do
  before=$(ml_slot_packets a)
  bed_iperf a 10.88.0.2 4 3 "$BED_TMP/run$run.json" -p 5201 --cport $((40000 + run * 16)) ||
    bed_die "iperf3 run $run"
  after=$(ml_slot_packets a)
  python3 - "$run" "$before" "$after" <<'PY' || bed_die "run $run: a link carried (almost) nothing"
import sys
run, b0, b1 = sys.argv[1], sys.argv[2].split("\n"), sys.argv[3].split("\n")
delta = {l0.split()[0]: int(l1.split()[2]) - int(l0.split()[2]) for l0, l1 in zip(b0, b1)}
total = sum(delta.values())
shares = {k: v / total for k, v in delta.items()}
print(f"  run {run}: " + " ".join(f"{k} {s:.0%}" for k, s in sorted(shares.items())))
sys.exit(0 if min(shares.values()) >= 0.15 else 1)
PY
done
echo "PASS: rebalance"
