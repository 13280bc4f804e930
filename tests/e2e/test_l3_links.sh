#!/usr/bin/env bash
# Links without a MAC or ARP (issue 13): hosts a and b joined by a veth (eth0) and an L3
# point-to-point link (eth1: a tun device in each host, NOARP, joined by ml-tunrelay), both
# shaped to 200 Mbit/s, static peers, BFD keyed. The old agent brought BFD Up on the L3 link
# but never put it in service: it waited for a neighbour entry in a usable NUD state, and a
# NOARP device keys its IPv4 neighbour by 0.0.0.0, so none ever came.
# - IPv4 and IPv6 over ML; no managed neighbour is made on the L3 link.
# - iperf3 -P8 a -> b: every link carries at least 15 % of the bytes.
# - a silent one-way failure of the L3 link (b drops what arrives on it): both ends take it
#   out, and it comes back once repaired.
# - discovery (no [[peer]]) finds the peer over both links.
# The failover and restart cases over a mixed set run in test_failover_*_l3.sh.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ML_L3_LINKS=1 ml_two_hosts 2 200mbit
bed_exec a ip -d link show eth1 | grep -q NOARP || bed_die "eth1 is not a NOARP link"
bed_exec a ip link show eth1 | grep -q link/ether && bed_die "eth1 has a MAC"
ml_start a "$(ml_config a 1 2 2)"
ml_start b "$(ml_config b 2 1 2)"
ml_wait_links a b

echo "== ping over ML, IPv4 and IPv6"
bed_exec a ping -c 3 -i 0.2 -w 5 10.88.0.2 >/dev/null || bed_die "ping 10.88.0.2"
bed_exec a ping -6 -c 3 -i 0.2 -w 5 fd88::2 >/dev/null || bed_die "ping fd88::2"
bed_exec b ping -c 3 -i 0.2 -w 5 10.88.0.1 >/dev/null || bed_die "ping 10.88.0.1 from b"
managed=$(bed_exec a ip neigh show nud all dev eth1 | grep -c managed || true)
[ "$managed" = 0 ] || bed_die "a made $managed managed neighbour entries on the L3 link"

echo "== iperf3 -P8 a -> b over ML"
bed_iperf_server b
declare -A TX0=()
for i in 0 1; do TX0[$i]=$(bed_dev_stats a "eth$i" | awk '{print $2}'); done
bed_iperf a 10.88.0.2 8 6 "$BED_TMP/iperf.json" || bed_die "iperf3 failed: $(head -c 400 "$BED_TMP/iperf.json")"
echo "  aggregate $(bed_iperf_mbps "$BED_TMP/iperf.json") Mbit/s"
total=0
declare -A TX=()
for i in 0 1; do
  TX[$i]=$(($(bed_dev_stats a "eth$i" | awk '{print $2}') - TX0[$i]))
  total=$((total + TX[$i]))
done
for i in 0 1; do
  share=$((TX[$i] * 1000 / total))
  echo "  eth$i: ${TX[$i]} B sent, $((share / 10)).$((share % 10)) % of the bytes"
  [ "$share" -ge 150 ] || bed_die "eth$i carried less than 15 % of the bytes"
done

echo "== one-way silent failure of the L3 link: b drops what arrives on eth1"
ml_fault b eth1 ingress 1000000
ml_wait_slot b eth1 down 5
ml_wait_slot a eth1 down 5
ml_fault b eth1 ingress 0
ml_wait_slot a eth1 up 10
ml_wait_slot b eth1 up 10
bed_exec a ping -c 3 -i 0.2 -w 5 10.88.0.2 >/dev/null || bed_die "ping after the repair"

for h in a b; do ml_stop "$h"; done

echo "== discovery: the same hosts with no [[peer]], hellos on both links"
# A tun is MULTICAST: the IPv4 group's hellos cross the L3 link like any packet (it has no
# IPv6 link-local address, so only the IPv4 group is heard there).
ml_start a "$(ml_config_mesh a 1 eth0 eth1)"
ml_start b "$(ml_config_mesh b 2 eth0 eth1)"
ml_wait_links a b
for h in a b; do
  n=$(ml_peers_json "$h" | python3 -c '
import json, sys
print(sum(1 for p in json.load(sys.stdin) for l in p["links"] if l["state"] == "up"))')
  [ "$n" = 4 ] || bed_die "$h: $n of 4 slots up by discovery (2 entries x 2 links)"
done
bed_exec a ping -c 3 -i 0.2 -w 5 10.88.0.2 >/dev/null || bed_die "ping over discovered links"
echo "  both links discovered and up on both hosts"
for h in a b; do ml_stop "$h"; done
echo "PASS: a veth and an L3 link in one set: both carry ML traffic, one-way failure repaired, discovery"
