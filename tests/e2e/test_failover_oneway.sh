#!/usr/bin/env bash
# A one-way silent failure under load (issue 4): 3 × 200 Mbit/s links, iperf3 -P8 from a to
# b; at t=3 s everything a sends to b over eth1 is dropped on b's ingress, carrier up (kernel
# ECMP never repairs this). BFD must take eth1 out of BOTH ends' maps, no stream may stall for
# more than 1 s, and once repaired eth1 must carry traffic again. The time to repair is
# measured in bench/, not asserted here.
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

# link_state HOST DEV: up or down, as HOST's map says for its peer.
link_state() {
  ml_peers_json "$1" | python3 -c "
import json, sys
print(next(l['state'] for l in json.load(sys.stdin)[0]['links'] if l['link'] == '$2'))"
}
wait_state() {  # HOST DEV STATE SECONDS
  local i
  for ((i = 0; i < $4 * 20; i++)); do
    [ "$(link_state "$1" "$2")" = "$3" ] && return 0
    sleep 0.05
  done
  bed_die "$1: eth1 not $3 after $4 s"
}

bed_iperf a 10.88.0.2 8 12 "$BED_TMP/iperf.json" -p 5201 &
iperf_pid=$!
sleep 3
echo "== t=3 s: silent blackhole a -> b on eth1"
ml_fault b eth1 ingress 1000000
echo "  fault injected at $(date +%H:%M:%S.%3N)"
wait_state b eth1 down 2
wait_state a eth1 down 2
echo "  both ends took eth1 out"
sleep 4
echo "== t=7 s: repaired"
ml_fault b eth1 ingress 0
wait_state a eth1 up 5
wait_state b eth1 up 5
before=$(ml_slot_packets a | awk '$1 == "eth1" {print $2}')
wait "$iperf_pid" || bed_die "iperf3 failed"
after=$(ml_slot_packets a | awk '$1 == "eth1" {print $2}')
((after > before)) || bed_die "eth1 carried nothing after the repair"

summary=$(python3 "$BED_LIB_DIR/iperf_summary.py" --stall-mbps 1 --stall-secs 1 "$BED_TMP/iperf.json")
echo "$summary" | sed 's/^/  /'
stalls=$(python3 "$BED_LIB_DIR/iperf_summary.py" --stall-mbps 1 --stall-secs 1 --value stalls \
  "$BED_TMP/iperf.json")
[ "$stalls" -eq 0 ] || bed_die "$stalls streams stalled for more than 1 s"
grep -h "BFD" "$BED_TMP"/mlinkd-*.log | sed 's/^/  /'
echo "PASS: one-way failover"
