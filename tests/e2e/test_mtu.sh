#!/usr/bin/env bash
# Links of different MTUs in one set (issue 13). The rule: ml0's MTU is the smallest of its
# links' MTUs, kept so as links come and go, so a packet that fits ml0 fits whichever link its
# flow hashes or fails over to, and one that does not fit is refused at the sender with
# "message too long" (EMSGSIZE, the stack's own PMTU), never dropped silently on a link.
# Hosts a and b: eth0 at MTU 9000, eth1 at 1500 (static peers over both, BFD keyed); eth2 at
# 1280 comes later, by a config change and `mlinkctl reload`.
# - ml0 is 1500; ping -M do -s 1472 over ML passes, -s 1473 fails at once with EMSGSIZE.
# - under iperf3 -P4 and a DF ping at 1472 every 0.1 s: eth0 (9000) fails one-way silently,
#   everything moves to eth1 (1500): no stream stalls for 1 s, no ping is lost after the
#   failover.
# - eth2 (1280) added by reload on both ends under the flows: ml0 drops to 1280 on both,
#   the running TCP flows go on (the stack learns the new MTU, no stall), -s 1252 passes and
#   -s 1253 fails with EMSGSIZE, in IPv4 and IPv6 (1232).
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 3 200mbit
for h in a b; do
  bed_exec "$h" ip link set eth0 mtu 9000
  bed_exec "$h" ip link set eth2 mtu 1280
done
config() {  # HOST ME PEER LINK_INDEXES
  local host=$1 me=$2 peer=$3 links=$4 f="$BED_TMP/$1.toml" i
  ml_keys
  {
    echo "[node]"
    echo "id = \"$(ml_node_id "$host")\""
    echo "ml_address = [\"10.88.0.$me/16\", \"fd88::$me/64\"]"
    for i in $links; do printf '[[link]]\ndevice = "eth%d"\n' "$i"; done
    echo "[[peer]]"
    echo "ml_address = [\"10.88.0.$peer\", \"fd88::$peer\"]"
    echo "via = ["
    for i in $links; do
      echo "  { device = \"eth$i\", address = [\"10.$i.0.$peer\", \"fd00:0:0:$i::$peer\"] },"
    done
    echo "]"
    printf '[bfd]\nkey_file = "%s"\n' "$ML_BFD_KEY"
  } >"$f"
  echo "$f"
}
ml_start a "$(config a 1 2 "0 1")"
ml_start b "$(config b 2 1 "0 1")"
ml_wait_links a b
ml_mtu() { bed_exec "$1" ip -o link show ml0 | grep -o 'mtu [0-9]*' | cut -d' ' -f2; }
for h in a b; do [ "$(ml_mtu "$h")" = 1500 ] || bed_die "$h: ml0 mtu $(ml_mtu "$h"), want 1500"; done
echo "  ml0: mtu 1500 on both (links 9000 and 1500)"

# df_ping SIZE [-6]: one ping with DF (IPv4) at SIZE payload bytes; prints ok, emsgsize or lost.
df_ping() {
  local size=$1 fam=${2:-} dst=10.88.0.2 out
  [ "$fam" = -6 ] && dst=fd88::2
  if out=$(bed_exec a ping $fam -M do -c 1 -W 2 -s "$size" "$dst" 2>&1); then
    echo ok
  elif grep -qiE 'message too long|mtu' <<<"$out"; then
    echo emsgsize
  else
    echo lost
  fi
}
expect_ping() {  # SIZE WANT [-6]
  local got
  got=$(df_ping "$1" "${3:-}")
  echo "  ping ${3:-} -M do -s $1: $got"
  [ "$got" = "$2" ] || bed_die "ping ${3:-} -s $1: $got, want $2"
}
expect_ping 1472 ok
expect_ping 1473 emsgsize
expect_ping 1452 ok -6
expect_ping 1453 emsgsize -6

echo "== failover from the 9000 link to the 1500 link under iperf3 -P4 and a DF ping"
bed_iperf_server b
bed_iperf a 10.88.0.2 4 14 "$BED_TMP/iperf.json" -i 0.2 &
iperf_pid=$!
BED_PIDS+=("$iperf_pid")
bed_bg a ping.log ping -M do -i 0.1 -W 1 -s 1472 -w 13 10.88.0.2
ping_pid=$BED_LAST_PID
sleep 2 # the flows established before the failure
ml_fault b eth0 ingress 1000000
ml_wait_slot b eth0 down 5
ml_wait_slot a eth0 down 5
sleep 2 # the flows on eth1 alone for a while, the DF pings among them
echo "== eth2 (mtu 1280) added by reload on both ends under the flows"
config a 1 2 "0 1 2" >/dev/null
config b 2 1 "0 1 2" >/dev/null
for h in a b; do bed_exec "$h" "$MLINKCTL" -n "$(ml_node_id "$h")" reload >/dev/null; done
for ((i = 0; i < 50; i++)); do
  [ "$(ml_mtu a)" = 1280 ] && [ "$(ml_mtu b)" = 1280 ] && break
  sleep 0.1
done
for h in a b; do [ "$(ml_mtu "$h")" = 1280 ] || bed_die "$h: ml0 mtu $(ml_mtu "$h") after eth2 came, want 1280"; done
echo "  ml0: mtu 1280 on both"
wait "$iperf_pid" || bed_die "iperf3 failed: $(head -c 400 "$BED_TMP/iperf.json")"
bed__forget_pid "$iperf_pid"
stalls=$(python3 "$BED_LIB_DIR/iperf_summary.py" --stall-mbps 1 --stall-secs 0.99 --value stalls "$BED_TMP/iperf.json")
echo "  iperf3: $(bed_iperf_mbps "$BED_TMP/iperf.json") Mbit/s, $stalls streams stalled for 1 s or more"
[ "$stalls" = 0 ] || bed_die "a stream stalled across the failover or the MTU change"
wait "$ping_pid" || true
bed__forget_pid "$ping_pid"
echo "  DF ping at 1472 during the run: $(grep -E 'transmitted' "$BED_TMP/ping.log")"
# Before eth2 came every ping fit; after, each is refused at the sender (never sent, never lost).
grep -q 'message too long\|mtu = 1280\|mtu=1280' "$BED_TMP/ping.log" ||
  bed_die "no ping was refused at the sender once ml0 became 1280: $(tail -3 "$BED_TMP/ping.log")"
expect_ping 1252 ok
expect_ping 1253 emsgsize
expect_ping 1232 ok -6
expect_ping 1233 emsgsize -6
for h in a b; do ml_stop "$h"; done
echo "PASS: ml0 follows the smallest link MTU; nothing large is dropped silently"
