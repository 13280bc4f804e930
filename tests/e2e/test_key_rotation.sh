#!/usr/bin/env bash
# Key rotation without an outage (issue 12, acceptance 3): three hosts by discovery, BFD and
# the topology protocol keyed, each pair joined by two links, iperf3 -P4 around the triangle
# (a -> b, b -> c, c -> a) throughout. Both protocols' keys go from id 1 to id 2 by the steps
# of OPERATIONS.md ("Keys and rotation"), one host at a time, each by `mlinkctl reload`:
#   1. every host adds key 2 to its key files, send_key_id = 1: it verifies 2, still signs 1
#   2. every host sets send_key_id = 2; then, on every host, the packets signed with key 1
#      stop (mlink_protocol_authenticated_packets_total{key_id="1"} holds still) and those
#      signed with 2 flow
#   3. every host removes key 1 and send_key_id (the highest id, 2, signs)
# Then, after twice the slow control detection time: no BFD session left Up on any host, no
# stream stalled for 1 s or more, no topology node expired, and every packet since step 3
# is signed with key 2.
#   a-b: eth0 eth1    a-c: eth2 eth3    b-c: eth4 eth5
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

bed_host a 1
bed_host b 2
bed_host c 3
for i in 0 1; do bed_link a b "$i"; done
for i in 2 3; do bed_link a c "$i"; done
for i in 4 5; do bed_link b c "$i"; done
declare -A LINKS=([a]="eth0 eth1 eth2 eth3" [b]="eth0 eth1 eth4 eth5" [c]="eth2 eth3 eth4 eth5")
BFD1=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
BFD2=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
TOPO1=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
TOPO2=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

# host_keys HOST "IDS" [SEND_ID]: (re)writes HOST's own key files with the keys IDS (of 1 2)
# and its config, send_key_id = SEND_ID in [bfd] and [discovery] when given.
host_keys() {
  local h=$1 ids=$2 send=${3:-} id dev bfd topo
  (umask 077
   : >"$BED_TMP/$h-bfd.key.new"
   : >"$BED_TMP/$h-topo.key.new"
   for id in $ids; do
     bfd="BFD$id" topo="TOPO$id"
     echo "$id ${!bfd}" >>"$BED_TMP/$h-bfd.key.new"
     echo "$id ${!topo}" >>"$BED_TMP/$h-topo.key.new"
   done
   mv "$BED_TMP/$h-bfd.key.new" "$BED_TMP/$h-bfd.key"
   mv "$BED_TMP/$h-topo.key.new" "$BED_TMP/$h-topo.key")
  {
    echo "[node]"
    echo "id = \"$(ml_node_id "$h")\""
    echo "ml_address = [\"10.88.0.${BED_HOSTNUM[$h]}/16\", \"fd88::${BED_HOSTNUM[$h]}/64\"]"
    for dev in ${LINKS[$h]}; do printf '[[link]]\ndevice = "%s"\n' "$dev"; done
    printf '[bfd]\nkey_file = "%s"\n' "$BED_TMP/$h-bfd.key"
    [ -n "$send" ] && echo "send_key_id = $send"
    printf '[discovery]\nkey_file = "%s"\n' "$BED_TMP/$h-topo.key"
    [ -n "$send" ] && echo "send_key_id = $send"
  } >"$BED_TMP/$h.toml.new"
  mv "$BED_TMP/$h.toml.new" "$BED_TMP/$h.toml"
}
ctl() { local h=$1; shift; bed_exec "$h" "$MLINKCTL" -n "$(ml_node_id "$h")" "$@"; }
scrape() {
  bed_exec "$1" python3 -c '
import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode(), end="")'
}
# snap HOST: HOST's /metrics now, to $BED_TMP/metrics-HOST.txt (one scrape: under iperf3 on
# two cores a scrape takes a while).
snap() { scrape "$1" >"$BED_TMP/metrics-$1.txt"; }
# keyed HOST PROTOCOL ID: from the last snap, packets HOST accepted signed with key ID.
keyed() {
  awk -v p="$2" -v k="$3" '
    index($0, "mlink_protocol_authenticated_packets_total{") == 1 &&
    index($0, "protocol=\"" p "\"") && index($0, "key_id=\"" k "\"") { n = $2 }
    END { print n + 0 }' "$BED_TMP/metrics-$1.txt"
}
send_key() {
  awk -v p="$2" 'index($0, "mlink_protocol_send_key_id{protocol=\"" p "\"}") == 1 { print $2 }' \
    "$BED_TMP/metrics-$1.txt"
}
bfd_changes() { grep -c 'BFD .* -> ' "$BED_TMP/mlinkd-$1.log" || true; }
# reload HOST WHAT: mlinkctl reload, which must apply and report a key change.
reload() {
  local out
  out=$(ctl "$1" reload) || bed_die "$1: reload failed: $out"
  grep -q 'bfd keys: ' <<<"$out" && grep -q 'discovery keys: ' <<<"$out" ||
    bed_die "$1: reload reported no key change: $out"
  echo "  $1: $2 ($(grep 'bfd keys' <<<"$out" | sed 's/^ *//'))"
}

for h in a b c; do
  host_keys "$h" 1
  ml_start "$h" "$BED_TMP/$h.toml"
done
ml_wait_links a b c
# Echo active everywhere: control packets at 1 s, so their detection time is 3 s.
for h in a b c; do
  for ((i = 0; ; i++)); do
    n=$(ctl "$h" -j show peers | python3 -c '
import json, sys
print(sum(1 for p in json.load(sys.stdin) for l in p["links"] if l.get("echo") == "active"))')
    [ "$n" -ge 4 ] && break # 2 peers x 2 links, a session each
    [ "$i" -lt 100 ] || bed_die "$h: echo active on $n of 4 links after 10 s"
    sleep 0.1
  done
done
declare -A CHANGES0=()
for h in a b c; do CHANGES0[$h]=$(bfd_changes "$h"); done

for h in a b c; do bed_iperf_server "$h" 5201; done
SECS=30
declare -A IPERF_PID=()
for pair in a:b b:c c:a; do
  src=${pair%:*} dst=${pair#*:}
  bed_iperf "$src" "10.88.0.${BED_HOSTNUM[$dst]}" 4 "$SECS" "$BED_TMP/iperf-$src$dst.json" -p 5201 -i 0.5 &
  IPERF_PID[$pair]=$!
  BED_PIDS+=("$!")
done
t0=$(date +%s%N)
elapsed() { echo $((($(date +%s%N) - t0) / 1000000)); }
sleep 2 # traffic established before the first step

echo "== 1. key 2 added everywhere, key 1 still signs ($(elapsed) ms)"
for h in a b c; do
  host_keys "$h" "1 2" 1
  reload "$h" "verifies 1 and 2, signs 1"
done

echo "== 2. key 2 signs, one host at a time ($(elapsed) ms)"
for h in a b c; do
  host_keys "$h" "1 2" 2
  reload "$h" "signs 2"
  for ((i = 0; i < 30; i++)); do # /metrics is rebuilt every second
    snap "$h"
    [ "$(send_key "$h" bfd)" = 2 ] && [ "$(send_key "$h" topo)" = 2 ] && break
    sleep 0.1
  done
  [ "$(send_key "$h" bfd)" = 2 ] && [ "$(send_key "$h" topo)" = 2 ] ||
    bed_die "$h: /metrics says it signs with bfd $(send_key "$h" bfd), topo $(send_key "$h" topo)"
done
# Before the old key goes: nobody signs with it any more. Over 2.5 s (more than two control
# intervals and two hellos) every host takes no packet signed with key 1, and some with 2.
declare -A OLD=() NEW=()
for h in a b c; do
  snap "$h"
  for p in bfd topo; do OLD[$h$p]=$(keyed "$h" $p 1) NEW[$h$p]=$(keyed "$h" $p 2); done
done
sleep 2.5
for h in a b c; do
  snap "$h"
  for p in bfd topo; do
    old=$(keyed "$h" $p 1) new=$(keyed "$h" $p 2)
    echo "  $h $p: key 1 +$((old - OLD[$h$p])), key 2 +$((new - NEW[$h$p])) packets in 2.5 s"
    [ "$old" = "${OLD[$h$p]}" ] || bed_die "$h: $p packets signed with key 1 still arrive"
    [ "$new" -gt "${NEW[$h$p]}" ] || bed_die "$h: no $p packet signed with key 2"
  done
done

grep -E '^mlink_protocol_(send_key_id|authenticated_packets_total)' "$BED_TMP/metrics-a.txt" |
  sed 's/^/  a: /'
echo "== 3. key 1 removed everywhere ($(elapsed) ms)"
for h in a b c; do
  host_keys "$h" 2
  reload "$h" "has key 2 only"
done
# Twice the control detection time (3 s with echo) for a key problem to show.
sleep 6.5
echo "== after the rotation ($(elapsed) ms)"
for pair in a:b b:c c:a; do # the checks below cover the whole rotation only if so
  kill -0 "${IPERF_PID[$pair]}" 2>/dev/null || bed_die "iperf3 $pair ended before the rotation did"
done
for pair in a:b b:c c:a; do
  wait "${IPERF_PID[$pair]}" || bed_die "iperf3 $pair failed: $(head -c 400 "$BED_TMP/iperf-${pair/:/}.json")"
  bed__forget_pid "${IPERF_PID[$pair]}"
done

fail=0
for h in a b c; do
  changes=$(($(bfd_changes "$h") - CHANGES0[$h]))
  expired=$(grep -c 'hold time expired' "$BED_TMP/mlinkd-$h.log" || true)
  ml_links_up "$h" || { echo "  $h: not every link up" >&2; fail=1; }
  echo "  $h: $changes BFD state changes, $expired topology hold times expired since traffic began"
  [ "$changes" -eq 0 ] || { grep 'BFD .* -> ' "$BED_TMP/mlinkd-$h.log" | tail -5 >&2; fail=1; }
  [ "$expired" -eq 0 ] || fail=1
  snap "$h"
  for p in bfd topo; do
    dropped=$(awk -v p="$p" 'index($0, "mlink_protocol_dropped_packets_total{") == 1 &&
      index($0, "protocol=\"" p "\"") && (index($0, "reason=\"unknown_key") || index($0, "reason=\"bad_mac\"") ||
       index($0, "reason=\"bad_digest\"")) { n += $2 }
      END { print n + 0 }' "$BED_TMP/metrics-$h.txt")
    echo "  $h $p: $dropped packets dropped for an unknown key or a bad MAC"
    [ "$dropped" -eq 0 ] || fail=1
  done
done
for pair in a:b b:c c:a; do
  json=$BED_TMP/iperf-${pair/:/}.json
  mbps=$(bed_iperf_mbps "$json")
  stalls=$(python3 "$BED_LIB_DIR/iperf_summary.py" --stall-mbps 1 --stall-secs 0.99 --value stalls "$json")
  echo "  iperf3 ${pair/:/ -> }: $mbps Mbit/s, $stalls streams stalled for 1 s or more"
  [ "$stalls" = 0 ] || fail=1
done
[ "$fail" = 0 ] || bed_die "the rotation was not seamless"
for h in a b c; do ml_stop "$h"; done
echo "PASS: both protocols' keys rotated on a running three-host mesh, 0 sessions down"
