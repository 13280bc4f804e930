# shellcheck shell=bash
# failover.sh - the failure matrix (issue 4, acceptance 2) on top of bed.sh and mlink.sh.
#
# Hosts a (1) and b (2), 3 × 200 Mbit/s veth links eth0..eth2 shaped on both ends, mlinkd on
# both, iperf3 -P8 from a to b with 0.2 s interval reports (client and server). A case script:
#
#   source "$(dirname "$0")/lib/failover.sh"
#   fo_setup                       # bed, agents, links up, iperf3 server, map timeline poller
#   fo_iperf_start 16              # iperf3 -P8 a -> b for 16 s, in the background
#   fo_at 3; fo_mark fault; <inject the fault on eth1>
#   fo_at 8; <repair>; fo_mark repair
#   fo_check_carries eth1 5        # up again on both ends and carrying traffic within 5 s
#   fo_finish eth1 "name"          # figures; asserts seen down on both ends, 0 stalls; PASS/FAIL
#
# Assertions that fail are collected (fo_fail) and reported together by fo_finish, so every
# figure is printed even when a case fails. A background poller reads both maps every
# FO_POLL_MS (mlinkctl -j show maps) into $BED_TMP/timeline.log: a short "down" (random loss,
# flapping) is seen even when it is over before anyone waits for it.
set -euo pipefail
FO_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$FO_LIB_DIR/bed.sh"
source "$FO_LIB_DIR/mlink.sh"

FO_INTERVAL=${FO_INTERVAL:-0.2}   # iperf3 interval reports (client and server), s
FO_POLL_MS=${FO_POLL_MS:-20}      # map timeline poller
FO_STALL_MBPS=1
FO_STALL_SECS=1
FO_PORT=5201
declare -ga FO_FAILED=()
declare -gA FO_MARK=()            # name -> epoch ms
FO_T0=                            # epoch ms when iperf3 was started
FO_IPERF_PID=
FO_JSON=

fo_now() { date +%s%3N; }
fo_fail() { echo "  ASSERTION FAILED: $*" >&2; FO_FAILED+=("$*"); }
# fo_t [MS]: seconds since the iperf3 start (now, or at epoch MS).
fo_t() { local ms=${1:-$(fo_now)}; awk -v a="$ms" -v b="$FO_T0" 'BEGIN { printf "%.2f", (a - b) / 1000 }'; }

fo_setup() {
  bed_require_root
  bed_init
  ml_two_hosts 3 "${FO_RATE:-200mbit}"
  # Keep the links' static IPv6 addresses across an admin down/up (the kernel flushes them
  # otherwise, and the peer's IPv6 entry then keeps the link down for good: nothing on this
  # bed re-adds them, as an OS's network configuration would).
  bed_sysctl a net.ipv6.conf.all.keep_addr_on_down=1
  bed_sysctl b net.ipv6.conf.all.keep_addr_on_down=1
  local h cfg
  ml_keys
  # FO_CONFIG_APPEND: more TOML (tables) for both agents; @TOPO_KEY@ in it becomes the run's
  # topology key file (ml_keys, in BED_TMP).
  for h in a b; do
    if [ "$h" = a ]; then cfg=$(ml_config a 1 2 3); else cfg=$(ml_config b 2 1 3); fi
    [ -z "${FO_CONFIG_APPEND:-}" ] || printf '%s\n' "${FO_CONFIG_APPEND//@TOPO_KEY@/$ML_TOPO_KEY}" >>"$cfg"
    ml_start "$h" "$cfg"
  done
  ml_wait_links a b
  BED_SERVER_INTERVAL=$FO_INTERVAL bed_iperf_server b "$FO_PORT"
  fo_poller_start
  fo_netstat a >"$BED_TMP/netstat-a.0"
  fo_netstat b >"$BED_TMP/netstat-b.0"
}

# fo_netstat HOST: HOST's /proc/net/{snmp,netstat} as "Group:Counter value" lines.
fo_netstat() {
  bed_exec "$1" cat /proc/net/snmp /proc/net/netstat | awk '
    ($1 in seen) { for (i = 2; i <= NF; i++) print $1 h[$1, i], $i; delete seen[$1]; next }
    { seen[$1] = 1; for (i = 2; i <= NF; i++) h[$1, i] = $i }'
}

# fo_netstat_delta HOST: the drop / error counters of HOST that grew since fo_setup.
fo_netstat_delta() {
  fo_netstat "$1" | awk 'NR == FNR { v[$1] = $2; next }
    $1 ~ /Drop|Err|Filter|PAWS|Discard|NoRoute|Csum|Backlog|Prune|Collapse|HostQueue|Fail|Timeouts/ && $2 > v[$1] {
      printf "%s+%d ", $1, $2 - v[$1] }' "$BED_TMP/netstat-$1.0" -
}

# fo_poller_start: the map timeline (see fo_timeline.py), killed at cleanup.
fo_poller_start() {
  python3 "$FO_LIB_DIR/fo_timeline.py" poll "$BED_TMP/timeline.log" "$FO_POLL_MS" "$MLINKCTL" \
    "a:$(bed_ns a):$(ml_node_id a)" "b:$(bed_ns b):$(ml_node_id b)" \
    >"$BED_TMP/poller.log" 2>&1 &
  BED_PIDS+=("$!")
}

# fo_iperf_start SECS [EXTRA...]: iperf3 -P8 a -> b (its ML address, or FO_DST), -i FO_INTERVAL,
# in the background; EXTRA (and FO_IPERF_EXTRA, e.g. "-C cubic") go to the client.
fo_iperf_start() {
  local secs=$1 extra
  shift
  read -r -a extra <<<"${FO_IPERF_EXTRA:-}"
  FO_JSON=$BED_TMP/iperf.json
  FO_T0=$(fo_now)
  bed_iperf a "${FO_DST:-10.88.0.2}" 8 "$secs" "$FO_JSON" -p "$FO_PORT" -i "$FO_INTERVAL" "${extra[@]}" "$@" &
  FO_IPERF_PID=$!
  BED_PIDS+=("$FO_IPERF_PID")
  echo "== iperf3 -P8 a -> b for ${secs} s, ${FO_INTERVAL} s intervals${FO_IPERF_EXTRA:+ ($FO_IPERF_EXTRA)}"
}

# fo_at SECS: sleep until SECS after the iperf3 start.
fo_at() {
  local left
  left=$(awk -v s="$1" -v now="$(fo_now)" -v t0="$FO_T0" 'BEGIN { d = s - (now - t0) / 1000; printf "%.3f", (d > 0 ? d : 0) }')
  sleep "$left"
}

# fo_mark NAME [TEXT]: remember now as NAME (fault, repair, ...) and say so. After the fault,
# both ends' TCP sockets (ss -tin) are saved 0.5, 1.5 and 2.5 s later (ss-*.txt in the temp
# dir, kept when the case fails): whether a stalled stream's sender is in RTO backoff; with
# the neighbour tables (ip -s neigh): skbs parked on an unresolved neighbour stay charged to
# their socket, and TCP does not retransmit a segment whose clone is still in a host queue.
fo_mark() {
  FO_MARK[$1]=$(fo_now)
  echo "== t=$(fo_t "${FO_MARK[$1]}") s: $1${2:+: $2}"
  [ "$1" = fault ] || return 0
  (
    sleep 0.5
    for t in 0.5 1.5 2.5; do
      bed_exec a ss -tin dst 10.88.0.2 >"$BED_TMP/ss-a-fault+$t.txt" 2>&1 || true
      bed_exec b ss -tin dst 10.88.0.1 >"$BED_TMP/ss-b-fault+$t.txt" 2>&1 || true
      bed_exec a ip -s neigh show >"$BED_TMP/neigh-a-fault+$t.txt" 2>&1 || true
      bed_exec b ip -s neigh show >"$BED_TMP/neigh-b-fault+$t.txt" 2>&1 || true
      sleep 1
    done
  ) >/dev/null 2>&1 &
  BED_PIDS+=("$!")
}

# fo_flap HOST DEV: from t=3 s, DEV on HOST down / up every 0.5 s, five times; left up at
# t=7.5 s (times since the iperf3 start).
fo_flap() {
  local i
  for i in 0 1 2 3 4; do
    bed_exec "$1" ip link set "$2" down
    fo_at "$(awk -v i="$i" 'BEGIN { print 3.5 + i }')"
    bed_exec "$1" ip link set "$2" up
    ((i == 4)) || fo_at "$((4 + i))"
  done
}

# fo_link_state HOST DEV: DEV's state (up|down) in HOST's map for its peer's IPv4 entry (the
# traffic's; the map's order of the IPv4 and IPv6 entries is the hash's), none if unreadable.
fo_link_state() {
  ml_peers_json "$1" 2>/dev/null | python3 -c "
import json, sys
try:
    v4 = next(p for p in json.load(sys.stdin) if ':' not in p['ml_address'])
    print(next(l['state'] for l in v4['links'] if l['link'] == '$2'))
except (ValueError, KeyError, StopIteration):
    print('none')"
}

# fo_wait_state HOST DEV up|down SECS: wait until HOST's map has DEV in that state; polls
# every 20 ms. Prints how long it took; returns 1 (and says so) on timeout.
fo_wait_state() {
  local host=$1 dev=$2 want=$3 secs=$4 t0 now
  t0=$(fo_now)
  while :; do
    now=$(fo_now)
    if [ "$(fo_link_state "$host" "$dev")" = "$want" ]; then
      echo "  $host: $dev $want after $((now - t0)) ms (t=$(fo_t "$now") s)"
      return 0
    fi
    ((now - t0 < secs * 1000)) || break
    sleep 0.02
  done
  echo "  $host: $dev not $want after $secs s (map: $(fo_link_state "$host" "$dev"))" >&2
  return 1
}

# fo_slot_packets HOST DEV: packets HOST's map has sent to its peer over DEV.
fo_slot_packets() { ml_slot_packets "$1" 2>/dev/null | awk -v d="$2" '$1 == d {print $2}'; }

# fo_check_carries DEV SECS: after a repair, DEV must be up again in both maps within SECS
# (counted from now; IPv4 entry, then every slot of every entry) and then carry traffic both
# ways (a's data, b's ACKs) over 1 s.
fo_check_carries() {
  local dev=$1 secs=$2 deadline h a0 b0 a1 b1 left ok=1
  deadline=$(($(fo_now) + secs * 1000))
  for h in a b; do
    left=$(((deadline - $(fo_now) + 999) / 1000))
    ((left > 0)) || left=1
    fo_wait_state "$h" "$dev" up "$left" || { fo_fail "$h: $dev not up again within ${secs} s of the repair"; ok=0; }
  done
  ((ok)) || return 0
  for h in a b; do
    until ml_links_up "$h"; do
      (($(fo_now) < deadline)) || { fo_fail "$h: not every slot (IPv4 and IPv6 entries) up within ${secs} s of the repair"; break; }
      sleep 0.05
    done
  done
  a0=$(fo_slot_packets a "$dev"); b0=$(fo_slot_packets b "$dev")
  sleep 1
  a1=$(fo_slot_packets a "$dev"); b1=$(fo_slot_packets b "$dev")
  echo "  $dev after the repair, over 1 s: a sent $((a1 - a0)) packets, b sent $((b1 - b0))"
  ((a1 - a0 > 0)) || fo_fail "$dev carried no data a -> b after the repair"
  ((b1 - b0 > 0)) || fo_fail "$dev carried nothing b -> a after the repair"
}

# fo_wait_iperf: wait for the client (once); a failure is an assertion failure.
fo_wait_iperf() {
  local rc=0
  [ -z "${FO_MARK[end]:-}" ] || return 0
  wait "$FO_IPERF_PID" || rc=$?
  bed__forget_pid "$FO_IPERF_PID"
  FO_MARK[end]=$(fo_now)
  [ "$rc" -eq 0 ] || fo_fail "iperf3 exited $rc: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error", "?"))' "$FO_JSON" 2>/dev/null || head -c 200 "$FO_JSON")"
}

# fo_window START END: receivers' aggregate Mbit/s over [START, END] s of the test.
fo_window() { python3 "$BED_LIB_DIR/iperf_summary.py" --window "$1" "$2" --value window "$FO_JSON" 2>/dev/null || echo '?'; }

# fo_report DEV: the timeline per host (fault -> down, time down, repair -> up) and the
# aggregate before / during / after; sets FO_SEEN_DOWN_<host>=yes|no.
fo_report() {
  local dev=$1 fault=${FO_MARK[fault]} repair=${FO_MARK[repair]:-${FO_MARK[end]}} end=${FO_MARK[end]}
  local line host tf tr te
  echo "== figures"
  while read -r line; do
    echo "  map $line"
    host=${line%% *}
    [[ $line =~ seen_down=([a-z]+) ]] && printf -v "FO_SEEN_DOWN_$host" '%s' "${BASH_REMATCH[1]}"
  done < <(python3 "$FO_LIB_DIR/fo_timeline.py" report "$BED_TMP/timeline.log" "$dev" "$fault" "$repair" "$end")
  tf=$(fo_t "$fault"); tr=$(fo_t "$repair"); te=$(fo_t "$end")
  python3 "$BED_LIB_DIR/iperf_summary.py" --stall-mbps "$FO_STALL_MBPS" --stall-secs "$FO_STALL_SECS" \
    "$FO_JSON" | sed 's/^/  /'
  local ta
  ta=$(awk -v r="$tr" 'BEGIN { printf "%.2f", r + 2 }')
  printf '  aggregate Mbit/s: before (1-%s s) %s, during (%s-%s s) %s, after (%s-%s s) %s\n' \
    "$tf" "$(fo_window 1 "$tf")" "$tf" "$tr" "$(fo_window "$tf" "$tr")" \
    "$ta" "$te" "$(fo_window "$ta" "$te")"
}

# fo_drops: per host, the datapath's non-zero drop counters and each link's qdisc drops.
fo_drops() {
  local h ml q
  for h in a b; do
    ml=$(bed_exec "$h" "$MLINKCTL" -n "$(ml_node_id "$h")" -j show drops 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(k + "=" + str(v["packets"]) for k, v in d.items() if v["packets"]) or "none")' 2>/dev/null || echo '?')
    q=$(for i in 0 1 2; do
      bed_exec "$h" tc -s -j qdisc show dev "eth$i" 2>/dev/null | python3 -c '
import json, sys
print(sys.argv[1] + "=" + str(sum(q.get("drops", 0) for q in json.load(sys.stdin))))' "eth$i" 2>/dev/null
    done | tr '\n' ' ')
    echo "  $h: datapath drops: $ml; qdisc drops (tbf, and ml-fault's in clsact): $q"
    echo "  $h: kernel counters grown: $(fo_netstat_delta "$h" 2>/dev/null || echo '?')"
  done
}

# fo_finish DEV NAME [--no-down|--up]: wait for iperf3, print the figures, assert that both
# maps had DEV down at some point after the fault (--no-down: not asserted; --up: both kept it
# up throughout) and that no stream stalled.
fo_finish() {
  local dev=$1 name=$2 down=${3:-} stalls h v
  fo_wait_iperf
  fo_report "$dev"
  for h in a b; do
    v="FO_SEEN_DOWN_$h"
    case $down in
      --no-down) ;;
      --up) [ "${!v:-no}" = no ] || fo_fail "$h's map had $dev down during the fault" ;;
      *) [ "${!v:-no}" = yes ] || fo_fail "$h's map never had $dev down during the fault" ;;
    esac
  done
  stalls=$(python3 "$BED_LIB_DIR/iperf_summary.py" --stall-mbps "$FO_STALL_MBPS" \
    --stall-secs "$FO_STALL_SECS" --value stalls "$FO_JSON" 2>/dev/null || echo '?')
  [ "$stalls" = 0 ] || fo_fail "$stalls stream(s) below $FO_STALL_MBPS Mbit/s for more than $FO_STALL_SECS s"
  fo_drops
  echo "  agents' last BFD / link-set lines:"
  for h in a b; do
    grep -hE "BFD|link/state" "$BED_TMP"/mlinkd-"$h"*.log 2>/dev/null | tail -n 14 | sed "s/^/    $h /" || true
  done
  echo "  case took $(($(fo_now) - FO_T0)) ms from the iperf3 start"
  if ((${#FO_FAILED[@]})); then
    printf '  - %s\n' "${FO_FAILED[@]}" >&2
    bed_die "$name: ${#FO_FAILED[@]} assertion(s) failed"
  fi
  echo "PASS: $name"
}
