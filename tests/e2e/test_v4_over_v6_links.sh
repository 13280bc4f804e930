#!/usr/bin/env bash
# IPv4 ML traffic over links that have only IPv6 addresses (issue 13), as IPoIB fabrics often
# are: hosts a and b joined by two veths with no IPv4 address at all, static peers whose next
# hops are IPv6 only, BFD keyed (over IPv6). IPv4 packets to the peer's ML address leave with
# an IPv6 next hop (bpf_redirect_neigh resolves it by ND: no ARP, no IPv4 on the link), and
# arrive by the ingress program, so the link needs no IPv4 route either.
# - ping 10.88.0.2 and fd88::2; an IPv4 iperf3 -P4 whose bytes go over both links.
# - no IPv4 neighbour entry exists on either link (nothing resolved IPv4 there).
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 2
for h in a b; do for i in 0 1; do bed_exec "$h" ip -4 addr flush dev "eth$i"; done; done
# config HOST ME PEER: static peer over eth0 and eth1 by their IPv6 addresses alone.
config() {
  local host=$1 me=$2 peer=$3 f="$BED_TMP/$1.toml" i
  ml_keys
  {
    echo "[node]"
    echo "id = \"$(ml_node_id "$host")\""
    echo "ml_address = [\"10.88.0.$me/16\", \"fd88::$me/64\"]"
    for i in 0 1; do printf '[[link]]\ndevice = "eth%d"\n' "$i"; done
    echo "[[peer]]"
    echo "ml_address = [\"10.88.0.$peer\", \"fd88::$peer\"]"
    echo "via = ["
    for i in 0 1; do echo "  { device = \"eth$i\", address = [\"fd00:0:0:$i::$peer\"] },"; done
    echo "]"
    printf '[bfd]\nkey_file = "%s"\n' "$ML_BFD_KEY"
  } >"$f"
  echo "$f"
}
ml_start a "$(config a 1 2)"
ml_start b "$(config b 2 1)"
ml_wait_links a b
for h in a b; do
  [ -z "$(bed_exec "$h" ip -4 addr show dev eth0)$(bed_exec "$h" ip -4 addr show dev eth1)" ] ||
    bed_die "$h: a link has an IPv4 address"
done

echo "== ping over ML, IPv4 and IPv6"
bed_exec a ping -c 3 -i 0.2 -w 5 10.88.0.2 >/dev/null || bed_die "ping 10.88.0.2 over IPv6-only links"
bed_exec a ping -6 -c 3 -i 0.2 -w 5 fd88::2 >/dev/null || bed_die "ping fd88::2"
bed_exec b ping -c 3 -i 0.2 -w 5 10.88.0.1 >/dev/null || bed_die "ping 10.88.0.1 from b"

echo "== IPv4 iperf3 -P4 a -> b"
bed_iperf_server b
declare -A P0=()
while read -r dev pkts _; do P0[$dev]=$pkts; done < <(ml_slot_packets a)
bed_iperf a 10.88.0.2 4 3 "$BED_TMP/iperf.json" || bed_die "iperf3 failed: $(head -c 400 "$BED_TMP/iperf.json")"
echo "  aggregate $(bed_iperf_mbps "$BED_TMP/iperf.json") Mbit/s"
while read -r dev pkts _; do
  echo "  $dev: $((pkts - P0[$dev])) packets of the IPv4 entry"
  [ "$((pkts - P0[$dev]))" -gt 100 ] || bed_die "$dev carried no IPv4 ML traffic"
done < <(ml_slot_packets a)
for h in a b; do
  for i in 0 1; do
    n=$(bed_exec "$h" ip -4 neigh show nud all dev "eth$i" | grep -c . || true)
    [ "$n" = 0 ] || bed_die "$h: $n IPv4 neighbour entries on eth$i"
  done
done

for h in a b; do ml_stop "$h"; done
echo "PASS: IPv4 over IPv6-only links"
