#!/usr/bin/env bash
# BFD interop with FRR: mlinkd's single-hop BFD (RFC 5880/5881) against FRR's bfdd.
#
# Host a runs mlinkd (one link, eth0, one peer); host b runs only FRR bfdd 8.4, configured
# by this test for the same link addresses and timers (50 ms x 3: detection time 150 ms).
# Checks that
#   1. the session comes Up on both sides (mlinkd's log and map; bfdd's log and
#      `show bfd peers json`), and bfdd sees mlinkd's timers (50 ms, x3);
#   2. a silent one-way drop (everything a sends to b dropped on b's ingress, carrier up)
#      takes the session Down on BOTH sides within detection time + DOWN_SLACK_MS: bfdd
#      stops hearing a and expires, then tells a (b -> a still works), so a's Down shows
#      that mlinkd honours a Down from an implementation other than its own;
#   3. once the drop is removed the session comes back Up on both sides.
# Why: mlink's BFD was written from the RFC and checked against itself; a peer that is
# not mlinkd (a router, a switch, FRR on a gateway) is the reason to speak BFD at all.
#
# bfdd runs standalone (no zebra, no watchfrr) in b's netns, with its config, pid file,
# vty socket and log in this run's temp dir; it is stopped by its PID at cleanup.
# Without zebra bfdd knows no interfaces, so the peer is bound by local-address only:
# `interface eth0` makes it log "specified interface eth0 ... doesn't exist" and never
# transmit (the socket bound to the local address still keeps it single hop, TTL 255).
set -euo pipefail
# shellcheck source=lib/bed.sh
source "$(dirname "$0")/lib/bed.sh"
# shellcheck source=lib/mlink.sh
source "$(dirname "$0")/lib/mlink.sh"

BFDD=${MLINK_BFDD:-/usr/lib/frr/bfdd}
INTERVAL_MS=50 # FRR 8.4 accepts 10..60000 ms
MULTIPLIER=3
DETECT_MS=$((INTERVAL_MS * MULTIPLIER))
# Slack over the detection time, for: the fault taking effect after we read the clock (one
# ml-fault process writing a map: 3-45 ms seen in a capture), ms-resolution log timestamps,
# one packet from b to a (a learns of the Down from b's packet), and scheduling on a shared
# 2-core machine. Measured fault-to-Down here: 110-155 ms on both sides.
DOWN_SLACK_MS=100

# require_frr: FRR's bfdd, vtysh and the frr user, with bed_require_root's policy
# (skip with 77, or fail when MLINK_REQUIRE_PRIVILEGED=1).
require_frr() {
  local why=''
  [[ -x $BFDD ]] || why="needs FRR bfdd at $BFDD (Debian package frr)"
  command -v vtysh >/dev/null || why="${why:+$why, }needs vtysh (Debian package frr)"
  id frr >/dev/null 2>&1 || why="${why:+$why, }needs the frr user (Debian package frr)"
  [[ -z $why ]] && return 0
  if [[ ${MLINK_REQUIRE_PRIVILEGED:-} == 1 ]]; then
    echo "FAIL: $why (MLINK_REQUIRE_PRIVILEGED=1)" >&2
    exit 1
  fi
  echo "SKIP: $why" >&2
  exit 77
}

# --- FRR bfdd on b -------------------------------------------------------------------------

FRR_DIR='' FRR_PID='' FRR_LOG=''

# frr_start HOST LOCAL PEER: bfdd in HOST's netns with one single-hop peer.
frr_start() {
  local host=$1 local_addr=$2 peer=$3 i
  FRR_DIR=$BED_TMP/frr
  FRR_LOG=$FRR_DIR/bfdd.log
  chmod 711 "$BED_TMP" # bfdd drops to user frr, which must reach its runtime dir
  install -d -o frr -g frr "$FRR_DIR"
  cat >"$FRR_DIR/bfdd.conf" <<EOF
log file $FRR_LOG
log timestamp precision 3
debug bfd peer
bfd
 peer $peer local-address $local_addr
  transmit-interval $INTERVAL_MS
  receive-interval $INTERVAL_MS
  detect-multiplier $MULTIPLIER
 exit
exit
EOF
  # Foreground (no -d), so bed_bg has bfdd's own PID and kills it at cleanup.
  bed_bg "$host" bfdd.out "$BFDD" -f "$FRR_DIR/bfdd.conf" -i "$FRR_DIR/bfdd.pid" \
    -z "$FRR_DIR/zserv.api" --vty_socket "$FRR_DIR" --bfdctl "$FRR_DIR/bfdctl.sock"
  FRR_PID=$BED_LAST_PID
  bed_on_cleanup frr_stop
  for ((i = 0; i < 50; i++)); do
    frr_peer_json >/dev/null 2>&1 && return 0
    kill -0 "$FRR_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$BED_TMP/bfdd.out" "$FRR_LOG" >&2 || true
  bed_die "bfdd did not start"
}

# frr_stop: stop bfdd; remove the crash-log dir it keeps in /var/tmp/frr if it could not.
frr_stop() {
  [[ -n $FRR_PID ]] || return 0
  bed_kill "$FRR_PID"
  rm -rf "/var/tmp/frr/bfdd.$FRR_PID"
  FRR_PID=
}

frr_vtysh() { vtysh --vty_socket "$FRR_DIR" -d bfdd "$@"; }

# frr_peer_json: bfdd's view of the one peer, as JSON.
frr_peer_json() {
  frr_vtysh -c 'show bfd peers json' | python3 -c '
import json, sys
peers = json.load(sys.stdin)
assert len(peers) == 1, peers
json.dump(peers[0], sys.stdout)'
}

# frr_field KEY: one field of bfdd's peer (status: up, down, init).
frr_field() { frr_peer_json | python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

# --- mlinkd on a ---------------------------------------------------------------------------

# mlinkd_config HOST: one link (eth0), one peer (b) behind it.
mlinkd_config() {
  local f=$BED_TMP/$1.toml
  cat >"$f" <<EOF
[node]
id = "$(ml_node_id "$1")"
ml_address = ["10.88.0.1/16"]
[bfd]
interval_ms = $INTERVAL_MS
multiplier = $MULTIPLIER
allow_unauthenticated = true  # FRR 8.4 has no BFD authentication
[[link]]
device = "eth0"
[[peer]]
ml_address = ["10.88.0.2"]
via = [ { device = "eth0", address = ["$(bed_addr4 b 0)"] } ]
EOF
  echo "$f"
}

# ml_link_state HOST: up or down, as HOST's map says for eth0 of its peer.
ml_link_state() {
  ml_peers_json "$1" | python3 -c "
import json, sys
print(next(l['state'] for l in json.load(sys.stdin)[0]['links'] if l['link'] == 'eth0'))"
}

# --- logs and clocks -----------------------------------------------------------------------

# ms_of HH:MM:SS.mmm: milliseconds since midnight.
ms_of() {
  local h m s ms
  IFS=':.' read -r h m s ms <<<"$1"
  echo $(((10#$h * 3600 + 10#$m * 60 + 10#$s) * 1000 + 10#$ms))
}

# first_match LOG SKIP REGEX: time (HH:MM:SS.mmm) of the first line after line SKIP of LOG
# matching REGEX; nothing if none. mlinkd lines start with the time, bfdd's with the date.
first_match() {
  tail -n +"$(($2 + 1))" "$1" | grep -E -m1 -- "$3" |
    grep -oE '(^| )[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} ' | head -1 | tr -d ' ' || true
}

# wait_log LOG SKIP REGEX SECONDS: first_match, waiting for it; dies when it does not come.
wait_log() {
  local i t
  for ((i = 0; i < $4 * 50; i++)); do
    t=$(first_match "$1" "$2" "$3")
    [[ -n $t ]] && { echo "$t"; return 0; }
    sleep 0.02
  done
  bed_die "no line matching '$3' in $1 after $4 s"
}

lines_of() { wc -l <"$1"; }

# --- the test ------------------------------------------------------------------------------

ML_UP='peer 10\.88\.0\.2 link eth0: BFD [a-z]+ -> up'
ML_DOWN='peer 10\.88\.0\.2 link eth0: BFD up -> down'
FRR_UP='state-change: \[mhop:no peer:10\.0\.0\.1 local:10\.0\.0\.2 .*\] [a-z]+ -> up'
FRR_DOWN='state-change: \[mhop:no peer:10\.0\.0\.1 local:10\.0\.0\.2 .*\] up -> down'

# expect_up ML_SKIP FRR_SKIP SECONDS: both logs say Up (after those lines), and so do
# mlinkd's map and bfdd's peer status.
expect_up() {
  local t
  t=$(wait_log "$BED_TMP/mlinkd-a.log" "$1" "$ML_UP" "$3")
  echo "  mlinkd (a): Up at $t"
  t=$(wait_log "$FRR_LOG" "$2" "$FRR_UP" "$3")
  echo "  bfdd   (b): Up at $t"
  ml_wait_links a
  [[ $(frr_field status) == up ]] || bed_die "bfdd: peer not up: $(frr_peer_json)"
}

bed_require_root vtysh
require_frr
bed_init
bed_host a 1
bed_host b 2
bed_link a b 0
# The drop filter goes on now at 0 ppm, so that the fault below is one map write.
ml_fault b eth0 ingress 0

echo "== bring-up: mlinkd on a, FRR bfdd on b, $INTERVAL_MS ms x $MULTIPLIER"
frr_start b "$(bed_addr4 b 0)" "$(bed_addr4 a 0)"
ml_start a "$(mlinkd_config a)"
expect_up 0 0 10
remote=$(frr_peer_json | python3 -c '
import json, sys
p = json.load(sys.stdin)
print(p["remote-transmit-interval"], p["remote-receive-interval"], p["remote-detect-multiplier"])')
echo "  bfdd sees mlinkd's timers (tx rx mult): $remote"
[[ $remote == "$INTERVAL_MS $INTERVAL_MS $MULTIPLIER" ]] ||
  bed_die "bfdd sees timers '$remote', configured $INTERVAL_MS $INTERVAL_MS $MULTIPLIER"

echo "== silent drop of a -> b on b's eth0 ingress (carrier up)"
ml_skip=$(lines_of "$BED_TMP/mlinkd-a.log")
frr_skip=$(lines_of "$FRR_LOG")
fault_at=$(date +%H:%M:%S.%3N)
bed_exec b "$ML_BUILD/tests/ml-fault" set eth0 ingress 1000000
echo "  fault at $fault_at"
frr_down=$(wait_log "$FRR_LOG" "$frr_skip" "$FRR_DOWN" 3)
ml_down=$(wait_log "$BED_TMP/mlinkd-a.log" "$ml_skip" "$ML_DOWN" 3)
limit=$((DETECT_MS + DOWN_SLACK_MS))
fail=0
for side in "bfdd   (b):$frr_down" "mlinkd (a):$ml_down"; do
  t=${side#*:}
  ms=$(($(ms_of "$t") - $(ms_of "$fault_at")))
  ((ms >= 0)) || ms=$((ms + 86400000)) # midnight
  echo "  ${side%%:*}: Down at $t, $ms ms after the fault (limit $DETECT_MS + $DOWN_SLACK_MS ms)"
  ((ms <= limit)) || fail=1
done
grep -hE "$FRR_DOWN" "$FRR_LOG" | sed 's/^/  /'
((fail == 0)) || bed_die "a side saw Down later than $limit ms after the fault"
[[ $(ml_link_state a) == down ]] || bed_die "mlinkd: eth0 still up in the map"
[[ $(frr_field status) != up ]] || bed_die "bfdd: peer still up"

echo "== drop removed"
ml_skip=$(lines_of "$BED_TMP/mlinkd-a.log")
frr_skip=$(lines_of "$FRR_LOG")
bed_exec b "$ML_BUILD/tests/ml-fault" set eth0 ingress 0
expect_up "$ml_skip" "$frr_skip" 10

grep -h "BFD" "$BED_TMP/mlinkd-a.log" | sed 's/^/  /'
echo "PASS: mlinkd BFD interoperates with FRR bfdd"
