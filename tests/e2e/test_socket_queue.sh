#!/usr/bin/env bash
# Back-pressure (issue 15): 3 × 200 Mbit/s tbf links, `socket_queue_limit = 65536` on the
# sender, 8 iperf3 flows a -> b. Without the limit a sending socket may queue far more than a
# link's tbf holds, and after the redirect the tbf's drops are losses TCP must retransmit
# (docs/FINDINGS.md). With it, ml0's egress refuses a socket's packet while that socket has a
# packet queued already, TCP takes the refusal as local congestion, and the links' qdiscs
# never overflow. Asserts: the entries carry the limit, the datapath refused packets under
# `socket_queue`, a's link qdiscs dropped nothing, every link carried traffic, iperf3 ran
# clean. Not timed (bench/run.sh compares retransmits and goodput).
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 3 200mbit
ML_NODE_TOML='socket_queue_limit = 65536'
ml_start a "$(ml_config a 1 2 3)"
ML_NODE_TOML=''
ml_start b "$(ml_config b 2 1 3)"
ml_wait_links a b
ml_peers_json a | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    assert e["socket_queue_limit"] == 65536, e' ||
  bed_die "a: the peer entries do not carry socket_queue_limit"

refused() {
  bed_exec a "$MLINKCTL" -n "$(ml_node_id a)" -j show drops |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["socket_queue"]["packets"])'
}

bed_iperf_server b 5201
q0=$(bed_qdisc_drops a 3)
r0=$(refused)
before=$(ml_slot_packets_of a 10.88.0.2)
bed_iperf a 10.88.0.2 8 5 "$BED_TMP/iperf.json" -p 5201 || bed_die "iperf3 (8 flows)"
after=$(ml_slot_packets_of a 10.88.0.2)
q1=$(bed_qdisc_drops a 3)
r1=$(refused)
echo "  8 flows: $(bed_iperf_mbps "$BED_TMP/iperf.json") Mbit/s received;" \
  "refused at ml0: $((r1 - r0)); a's link qdisc drops: $((q1 - q0))"
((r1 > r0)) || bed_die "the datapath refused no packet: the limit never acted"
((q1 == q0)) || bed_die "a's link qdiscs dropped $((q1 - q0)) packets despite the limit"
python3 - "$before" "$after" <<'PY' || bed_die "a link carried no traffic"
import sys
b0, b1 = sys.argv[1].split("\n"), sys.argv[2].split("\n")
delta = {l0.split()[0]: int(l1.split()[2]) - int(l0.split()[2]) for l0, l1 in zip(b0, b1)}
sys.exit(0 if min(delta.values()) > 0 else 1)
PY
echo "PASS: TCP backs off at ml0 instead of losing packets in the links' qdiscs"
