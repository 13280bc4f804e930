#!/usr/bin/env bash
# Self-test of tests/e2e/lib/bed.sh: two hosts, three links, v4+v6 ping on every link,
# a 2 s iperf3 over a shaped link (checks bed_shape, bed_iperf, iperf_summary.py and
# bed_dev_stats), then cleanup must leave no namespace of this run behind.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/bed.sh
source "$(dirname "$0")/lib/bed.sh"

bed_require_root ping jq
bed_init


build_topology() {
  bed_host a 1
  bed_host b 2
  local i
  for i in 0 1 2; do bed_link a b "$i"; done
}

check_names() {
  local h i
  for h in a b; do
    for i in 0 1 2; do
      bed_exec "$h" ip link show dev "eth$i" >/dev/null || bed_die "eth$i missing in $h"
    done
  done
}

ping_all_links() {
  local i
  for i in 0 1 2; do
    bed_exec a ping -c 1 -w 3 -q "$(bed_addr4 b "$i")" >/dev/null || bed_die "v4 ping a->b on link $i"
    bed_exec b ping -c 1 -w 3 -q "$(bed_addr4 a "$i")" >/dev/null || bed_die "v4 ping b->a on link $i"
    bed_exec a ping -6 -c 1 -w 3 -q "$(bed_addr6 b "$i")" >/dev/null || bed_die "v6 ping a->b on link $i"
    bed_exec b ping -6 -c 1 -w 3 -q "$(bed_addr6 a "$i")" >/dev/null || bed_die "v6 ping b->a on link $i"
  done
  echo "ok: v4 and v6 ping on links 0 1 2"
}

# 2 s over eth1 shaped to 100 Mbit/s: the receiver rate must sit near the shaped rate (a
# generous band: the bucket's initial burst inflates very short runs) and the link's tx
# counter must account for at least what iperf3 says it received.
iperf_one_link() {
  local out=$BED_TMP/iperf.json tx0 tx1 rate
  bed_shape a eth1 100mbit
  bed_shape b eth1 100mbit
  bed_iperf_server b
  read -r _ tx0 _ _ < <(bed_dev_stats a eth1)
  bed_iperf a "$(bed_addr4 b 1)" 2 2 "$out" || bed_die "iperf3 client failed: $(head -c 300 "$out")"
  read -r _ tx1 _ _ < <(bed_dev_stats a eth1)
  rate=$(bed_iperf_mbps "$out")
  python3 "$(dirname "$0")/lib/iperf_summary.py" --stall-mbps 1 --stall-secs 0.5 "$out"
  awk -v r="$rate" 'BEGIN { exit !(r > 70 && r < 110) }' || bed_die "eth1 shaped to 100mbit carried $rate Mbit/s"
  local recv_bytes
  recv_bytes=$(jq '.end.sum_received.bytes' "$out")
  ((tx1 - tx0 >= recv_bytes)) || bed_die "eth1 tx bytes $((tx1 - tx0)) < iperf3 received $recv_bytes"
  echo "ok: iperf3 over eth1 at $rate Mbit/s, eth1 tx +$((tx1 - tx0)) bytes"
}

check_cleanup() {
  local id=$BED_RUNID
  bed_cleanup
  if ip netns list | grep -q "^ml${id}"; then bed_die "namespaces left behind: $(ip netns list | grep "^ml${id}")"; fi
  echo "ok: cleanup left no namespace"
}

build_topology
check_names
ping_all_links
iperf_one_link
check_cleanup
echo "PASS test_bed_selftest"
