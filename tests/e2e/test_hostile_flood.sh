#!/usr/bin/env bash
# A hostile neighbour (issue 12, acceptance 2): during iperf3 -P8 a -> b over 3 links, b floods
# a's eth1 address with junk UDP as fast as one core sends it (ml-flood: one sendmmsg loop) to
# the topology port 28012, BFD control 3784 and BFD echo 3785, with TTL 64 and 255, from b's
# own address on the link (a BFD peer) and from another address on it (no peer). Asserted:
# no BFD session leaves Up on either end (both maps keep every link), no stream stalls for 1 s
# or more, not one echo from the non-peer is reflected (an nftables counter on b), and a's
# guard counted what it refused, and no topology packet of b's was refused as a replay.
# Discovery runs beside the static peer, so 28012 has a listener. b's eth1 is left unshaped for the flood: at 200 Mbit/s its own queue would carry
# mostly junk, which is congestion that BFD is right to report, not what this test is about.
FO_CONFIG_APPEND=""
source "$(dirname "$0")/lib/failover.sh"
bed_require_root nft
# @TOPO_KEY@: fo_setup makes the run's keys in its temp dir, then fills it in.
FO_CONFIG_APPEND=$(printf '[discovery]\nkey_file = "@TOPO_KEY@"\nhello_interval_ms = 200')
fo_setup
FLOOD=$ML_BUILD/tests/ml-flood
[ -x "$FLOOD" ] || bed_die "no $FLOOD (build the tests first)"
bed_exec b ip addr add 10.1.0.77/16 dev eth1 # on the link, no BFD peer of a's
bed_unshape b eth1
# Anything a sends from its echo port to the stranger: a reflection it must never make.
bed_exec b nft -f - <<'NFT'
table inet mlflood {
  counter reflected_to_stranger {}
  chain pre { type filter hook prerouting priority -300; ip saddr 10.1.0.1 ip daddr 10.1.0.77 udp sport 3785 counter name reflected_to_stranger; }
}
NFT
scrape() {
  bed_exec a python3 -c 'import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode(), end="")'
}
sleep 2 # two rounds of /metrics (rebuilt every second) over ~30 HELLOs of b's
scrape >"$BED_TMP/metrics-before.txt"
grep -q '^mlink_peers 1$' "$BED_TMP/metrics-before.txt" || bed_die "a's /metrics shows no peer"

fo_iperf_start 14
fo_at 3
targets=()
for src in 10.1.0.2 10.1.0.77; do
  for port in 28012 3784 3785; do
    for ttl in 64 255; do targets+=("$src,10.1.0.1,$port,$ttl"); done
  done
done
fo_mark fault "junk flood b -> a's eth1: ports 28012 3784 3785, TTL 64 and 255, peer and non-peer sources"
bed_exec b "$FLOOD" --seconds 6 "${targets[@]}" >"$BED_TMP/flood.txt" ||
  bed_die "ml-flood failed: $(cat "$BED_TMP/flood.txt")"
fo_mark repair "flood over"
sed 's/^/  /' "$BED_TMP/flood.txt"
fo_wait_iperf
sleep 1.1 # /metrics is rebuilt every second
scrape >"$BED_TMP/metrics-after.txt"

echo "== a's guard (mlink_ingress_packets_total, growth during the flood)"
python3 - "$BED_TMP/metrics-before.txt" "$BED_TMP/metrics-after.txt" <<'PY' | tee "$BED_TMP/guard.txt"
import re, sys
def read(p):
    out = {}
    for line in open(p):
        m = re.match(r'mlink_ingress_packets_total\{counter="([a-z_]+)"\} (\S+)', line)
        if m: out[m.group(1)] = float(m.group(2))
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
for k in b: print(f"  {k}: +{b[k] - a.get(k, 0):.0f}")
PY
for c in echo_refused hop_limit not_a_peer malformed; do
  grep -qE "^  $c: \+[1-9]" "$BED_TMP/guard.txt" || fo_fail "a's guard counted no $c during the flood"
done
# b is a's static peer and a discovery neighbour: its HELLOs reach a via the group and by
# unicast, and every copy has a sequence number of its own (one shared sequence made every
# second copy a replay, several a second). Asserted over the seconds before the flood: no
# replay. A copy that arrives 64 or more numbers late is counted apart, as stale: at start-up
# an IPv6 unicast copy can wait ~0.8 s for its next hop to resolve while ~100 newer ones go
# past (seen with the sequence numbers in the debug log); under the flood, copies wait behind
# the junk in the IPv4 socket's queue.
dropped_count() { # FILE REASON
  sed -n "s/^mlink_protocol_dropped_packets_total{protocol=\"topo\",reason=\"$2\"} //p" "$1"
}
replays_before=$(dropped_count "$BED_TMP/metrics-before.txt" replay)
echo "  topology packets a refused as replays: before the flood ${replays_before:-?}," \
  "after it $(dropped_count "$BED_TMP/metrics-after.txt" replay); as stale:" \
  "$(dropped_count "$BED_TMP/metrics-before.txt" stale), $(dropped_count "$BED_TMP/metrics-after.txt" stale)"
[ "${replays_before:-x}" = 0 ] ||
  fo_fail "a refused ${replays_before:-?} of b's topology packets as replays before the flood"
stranger=$(bed_exec b nft -j list counter inet mlflood reflected_to_stranger |
  python3 -c 'import json,sys; print([o["counter"]["packets"] for o in json.load(sys.stdin)["nftables"] if "counter" in o][0])')
echo "  echoes reflected to the non-peer 10.1.0.77: $stranger"
[ "$stranger" = 0 ] || fo_fail "$stranger echoes from a non-peer were reflected"

for h in a b; do
  n=$(grep -cE "BFD up -> (down|init)" "$BED_TMP/mlinkd-$h.log" || true)
  [ "$n" = 0 ] || fo_fail "$h: $n BFD session(s) left Up: $(grep -E 'BFD up -> ' "$BED_TMP/mlinkd-$h.log" | head -3)"
done
fo_finish eth1 "junk flood from a neighbour" --up
