# shellcheck shell=bash
# bed.sh — network-namespace test bed for mlink e2e tests and benchmarks.
#
# Source it from a script that runs with `set -euo pipefail`, then:
#   bed_require_root            # skip (77) / fail when not privileged
#   bed_init                    # run id, temp dir, cleanup trap
#   bed_host a 1; bed_host b 2  # netns ml<runid>a / ml<runid>b
#   bed_link a b 0              # eth0 in both, 10.0.0.{1,2}/24, fd00:0:0:0::{1,2}/64
#   bed_shape a eth0 200mbit
#   bed_exec a ping -c1 -w2 10.0.0.2
#
# Rules this library keeps: everything happens inside namespaces it created (names carry a
# per-run id), devices are created directly inside those namespaces (never in the root netns),
# every process it starts is recorded and killed by PID, and the EXIT/INT/TERM trap deletes
# the namespaces. Use bed_on_cleanup instead of your own trap (a second trap would replace ours).
#
# Commands run through `nsenter --net=/run/netns/NS`, not `ip netns exec`: the latter remounts
# /sys, which hides bpffs pins and shows a different sysfs per call. Note /sys under nsenter
# still shows the root netns' devices — read counters with bed_dev_stats, not /sys/class/net.
#
# Do not call bed_host / bed_bg / bed_iperf_server inside $(...): they record state in globals.

BED_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

declare -gA BED_NS=()        # host name -> netns name
declare -gA BED_HOSTNUM=()   # host name -> host number (last octet)
declare -ga BED_PIDS=()      # background processes we started
declare -ga BED_CLEANUP_HOOKS=()
BED_RUNID=${BED_RUNID:-}
BED_TMP=${BED_TMP:-}
BED_LAST_PID=
BED_IPERF_PORT=${BED_IPERF_PORT:-5201}
# iperf3 pinning: client and server on different cores keeps 2-core runs from going bimodal.
# Set to empty to disable.
BED_CLIENT_CPU=${BED_CLIENT_CPU-0}
BED_SERVER_CPU=${BED_SERVER_CPU-1}
# tbf defaults, measured: see bed_shape.
BED_TBF_BURST=${BED_TBF_BURST:-256kb}
BED_TBF_LATENCY=${BED_TBF_LATENCY:-20ms}

bed_log() { printf '[bed %s] %s\n' "${BED_RUNID:-?}" "$*" >&2; }
bed_die() { printf '[bed %s] FAIL: %s\n' "${BED_RUNID:-?}" "$*" >&2; exit 1; }

# bed_require_root [TOOL...]: exit 77 (ctest "skipped") when we cannot build namespaces or a
# tool is missing; exit 1 instead when the caller insists on privileged tests
# (MLINK_REQUIRE_PRIVILEGED=1, set by CI).
bed_require_root() {
  local why='' tool
  for tool in ip tc ss nsenter unshare taskset timeout iperf3 python3 "$@"; do
    command -v "$tool" >/dev/null || why="${why:+$why, }needs $tool"
  done
  if [[ -n $why ]]; then
    :
  elif [[ $EUID -ne 0 ]]; then
    why="needs root (network namespaces, veth, tc)"
  elif ! unshare --net true 2>/dev/null; then
    why="cannot create a network namespace here"
  fi
  [[ -z $why ]] && return 0
  if [[ ${MLINK_REQUIRE_PRIVILEGED:-} == 1 ]]; then
    echo "FAIL: $why (MLINK_REQUIRE_PRIVILEGED=1)" >&2
    exit 1
  fi
  echo "SKIP: $why" >&2
  exit 77
}

# Start a run: unique id (6 hex chars, checked against existing namespaces), temp dir, trap.
bed_init() {
  while :; do
    BED_RUNID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    ! ip netns list 2>/dev/null | grep -q "^ml${BED_RUNID}" && break
  done
  BED_TMP=$(mktemp -d "/tmp/mlbed.${BED_RUNID}.XXXX")
  trap 'bed__on_exit' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  bed_log "run id ${BED_RUNID}, temp dir ${BED_TMP}"
}

bed__on_exit() {
  local rc=$?
  bed_cleanup "$rc"
  exit "$rc"
}

# Register a command to run (first, in reverse order) at cleanup time.
bed_on_cleanup() { BED_CLEANUP_HOOKS+=("$*"); }

# Kill our processes, delete our namespaces and our agents' state files, remove the temp dir
# (kept when rc != 0).
# Idempotent; never fails.
bed_cleanup() {
  local rc=${1:-0} i pid ns
  for ((i = ${#BED_CLEANUP_HOOKS[@]} - 1; i >= 0; i--)); do
    eval "${BED_CLEANUP_HOOKS[i]}" >/dev/null 2>&1 || true
  done
  BED_CLEANUP_HOOKS=()
  bed__kill_pids "${BED_PIDS[@]}"
  BED_PIDS=()
  [[ -n $BED_RUNID ]] || return 0
  # Every namespace with our run id is ours, including any recorded in a subshell.
  for ns in $(ip netns list 2>/dev/null | awk -v p="ml${BED_RUNID}" 'index($1, p) == 1 {print $1}'); do
    # Safety net for processes started in our namespaces outside bed_bg.
    local -a inside=()
    mapfile -t inside < <(ip netns pids "$ns" 2>/dev/null)
    bed__kill_pids "${inside[@]}"
    ip netns del "$ns" 2>/dev/null || true
  done
  BED_NS=()
  BED_HOSTNUM=()
  # What our agents keep across a restart (named by node id, which starts with the run id):
  # the BFD state a clean stop leaves for the next run of that node, and what a killed one
  # left in the default bpffs.
  rm -rf /run/mlink/"$BED_RUNID"* /sys/fs/bpf/mlink/"$BED_RUNID"* 2>/dev/null || true
  if [[ -n $BED_TMP && -d $BED_TMP ]]; then
    if [[ $rc -eq 0 && ${BED_KEEP_TMP:-0} != 1 ]]; then
      rm -rf "$BED_TMP"
    else
      bed_log "logs kept in $BED_TMP"
    fi
  fi
  return 0
}

# TERM, wait up to 2 s, then KILL; only the PIDs given.
bed__kill_pids() {
  local pid t
  (($#)) || return 0
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for ((t = 0; t < 20; t++)); do
    local alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# bed_host NAME [HOSTNUM]: create netns ml<runid><NAME> with lo up. HOSTNUM (default: order of
# creation, from 1) is the last octet / v6 suffix of this host's link addresses.
bed_host() {
  local name=$1 num=${2:-$((${#BED_NS[@]} + 1))}
  local ns="ml${BED_RUNID}${name}"
  [[ -n $BED_RUNID ]] || bed_die "bed_host before bed_init"
  [[ -z ${BED_NS[$name]:-} ]] || bed_die "host $name exists"
  ip netns add "$ns"
  BED_NS[$name]=$ns
  BED_HOSTNUM[$name]=$num
  bed_exec "$name" ip link set lo up
}

# bed_ns HOST: print the netns name of HOST.
bed_ns() {
  [[ -n ${BED_NS[$1]:-} ]] || bed_die "unknown host $1"
  printf '%s\n' "${BED_NS[$1]}"
}

# bed_exec HOST CMD...: run CMD in HOST's netns (same mount namespace, so bpffs pins are seen).
bed_exec() {
  local ns=${BED_NS[$1]:-}
  [[ -n $ns ]] || bed_die "unknown host $1"
  shift
  nsenter --net="/run/netns/$ns" "$@"
}

# bed_bg HOST LOGFILE CMD...: start CMD in the background in HOST's netns, stdout+stderr to
# LOGFILE (relative paths go to the temp dir). PID in BED_LAST_PID, killed at cleanup.
bed_bg() {
  local host=$1 log=$2 ns=${BED_NS[$1]:-}
  shift 2
  [[ -n $ns ]] || bed_die "unknown host $host"
  [[ $log == /* ]] || log="$BED_TMP/$log"
  nsenter --net="/run/netns/$ns" "$@" >"$log" 2>&1 &
  BED_LAST_PID=$!
  BED_PIDS+=("$BED_LAST_PID")
}

# bed_kill PID: stop one background process early (TERM, then KILL).
bed_kill() {
  bed__kill_pids "$1"
  bed__forget_pid "$1"
}

bed__forget_pid() {
  local i
  for i in "${!BED_PIDS[@]}"; do [[ ${BED_PIDS[i]} != "$1" ]] || unset 'BED_PIDS[i]'; done
  BED_PIDS=("${BED_PIDS[@]}")
}

# bed_link HOST_A HOST_B IDX: veth pair named eth<IDX> in both hosts, up, with
# 10.<IDX>.0.<hostnum>/24 and fd00:0:0:<IDX>::<hostnum>/64 (nodad).
# Both ends are created directly inside their namespaces, so the name eth<IDX> never exists in
# the root netns (no clash with the host's eth0, nothing to leak there if we die mid-way).
bed_link() {
  local a=$1 b=$2 idx=$3 h dev="eth$3"
  ip link add "$dev" netns "$(bed_ns "$a")" type veth peer name "$dev" netns "$(bed_ns "$b")"
  for h in "$a" "$b"; do
    bed_exec "$h" ip addr add "10.${idx}.0.${BED_HOSTNUM[$h]}/24" dev "$dev"
    bed_exec "$h" ip -6 addr add "fd00:0:0:${idx}::${BED_HOSTNUM[$h]}/64" dev "$dev" nodad
    bed_exec "$h" ip link set "$dev" up
  done
}

# bed_addr4 HOST IDX / bed_addr6 HOST IDX: HOST's address on link IDX.
bed_addr4() { printf '10.%s.0.%s\n' "$2" "${BED_HOSTNUM[$1]}"; }
bed_addr6() { printf 'fd00:0:0:%s::%s\n' "$2" "${BED_HOSTNUM[$1]}"; }

# bed_shape HOST DEV RATE [BURST] [LATENCY]: tbf root qdisc on DEV's egress.
# tbf must hold a whole GSO skb (up to 64 KB) in its bucket or it segments every skb in
# software; 256kb of burst gives line rate (191 of 200 Mbit/s goodput = 1448/1514) and
# 20ms of queue keeps RTTs sane. Measured by bench/throughput_baselines.sh.
bed_shape() {
  local host=$1 dev=$2 rate=$3 burst=${4:-$BED_TBF_BURST} lat=${5:-$BED_TBF_LATENCY}
  bed_exec "$host" tc qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency "$lat"
}

bed_unshape() { bed_exec "$1" tc qdisc del dev "$2" root 2>/dev/null || true; }

# bed_sysctl HOST KEY=VALUE...: per-netns sysctls (/proc/sys/net follows the caller's netns).
bed_sysctl() {
  local host=$1 kv
  shift
  for kv in "$@"; do bed_exec "$host" sysctl -qw "$kv"; done
}

# bed_dev_stats HOST DEV: print "tx_packets tx_bytes rx_packets rx_bytes" (one line).
bed_dev_stats() {
  local json
  json=$(bed_exec "$1" ip -s -j link show dev "$2")
  if command -v jq >/dev/null; then
    jq -r '.[0].stats64 | "\(.tx.packets) \(.tx.bytes) \(.rx.packets) \(.rx.bytes)"' <<<"$json"
  else
    python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["stats64"]
print(s["tx"]["packets"], s["tx"]["bytes"], s["rx"]["packets"], s["rx"]["bytes"])' <<<"$json"
  fi
}

# bed_qdisc_drops HOST N: packets the qdiscs of HOST's eth0..eth(N-1) dropped so far, summed
# (a sender-side queue overflow when they are shaping qdiscs).
bed_qdisc_drops() {
  local i n=0 d
  for ((i = 0; i < $2; i++)); do
    d=$(bed_exec "$1" tc -s -j qdisc show dev "eth$i" |
      python3 -c 'import json, sys; print(sum(q.get("drops", 0) for q in json.load(sys.stdin)))')
    n=$((n + d))
  done
  echo "$n"
}

# bed_wait_tcp_listen HOST PORT [TIMEOUT_S]: wait until something listens on PORT in HOST.
bed_wait_tcp_listen() {
  local host=$1 port=$2 limit=${3:-5} t
  for ((t = 0; t < limit * 10; t++)); do
    bed_exec "$host" ss -Hltn "sport = :$port" | grep -q . && return 0
    sleep 0.1
  done
  bed_die "nothing listens on port $port in $host after ${limit}s"
}

# bed_iperf_server HOST [PORT] [EXTRA...]: persistent iperf3 server (pinned to BED_SERVER_CPU),
# waits until it listens. PID in BED_LAST_PID. It runs with -J and its own interval
# (BED_SERVER_INTERVAL, default 0.1 s: the client's -i is not passed to the server) so that
# --get-server-output gives receiver-side per-stream intervals for stall detection.
bed_iperf_server() {
  local host=$1 port=${2:-$BED_IPERF_PORT} pin=()
  shift $(($# < 2 ? $# : 2))
  [[ -n $BED_SERVER_CPU ]] && pin=(taskset -c "$BED_SERVER_CPU")
  bed_bg "$host" "iperf3-server-$host-$port.log" "${pin[@]}" \
    iperf3 -s -p "$port" -J -i "${BED_SERVER_INTERVAL:-0.1}" "$@"
  bed_wait_tcp_listen "$host" "$port"
}

# bed_iperf HOST DST PARALLEL SECONDS OUTJSON [EXTRA...]: iperf3 client in HOST, JSON (with the
# server's receiver-side intervals) to OUTJSON. Port: BED_IPERF_PORT or -p in EXTRA (later
# options win). Bounded by timeout. Fails, saying why, when iperf3 does or when its JSON holds
# an "error" (it exits 0 on some, e.g. a stream that could not connect).
bed_iperf() {
  local host=$1 dst=$2 par=$3 secs=$4 out=$5 pin=()
  shift 5
  [[ -n $BED_CLIENT_CPU ]] && pin=(taskset -c "$BED_CLIENT_CPU")
  # Integer bound: test length + connect + result exchange; -k in case iperf3 ignores TERM.
  local limit=$((${secs%.*} + 20)) pid rc=0
  # In the background + wait, so a TERM/INT to the script runs cleanup at once instead of
  # after the client finishes (bash defers traps while a foreground child runs).
  timeout -k 5 "$limit" nsenter --net="/run/netns/${BED_NS[$host]}" "${pin[@]}" \
    iperf3 -c "$dst" -p "$BED_IPERF_PORT" -P "$par" -t "$secs" -J --get-server-output \
    --connect-timeout 3000 "$@" >"$out" &
  pid=$!
  BED_PIDS+=("$pid")
  wait "$pid" || rc=$?
  bed__forget_pid "$pid"
  local err
  err=$(python3 -c 'import json, sys
try:
    print(json.load(open(sys.argv[1])).get("error", ""))
except Exception as e:
    print(f"no JSON result ({e})")' "$out")
  if [ -n "$err" ]; then
    echo "[bed $BED_RUNID] iperf3 $host -> $dst: ${err} (exit $rc)" >&2
    ((rc != 0)) || rc=1
  fi
  return "$rc"
}

# bed_reserve_ports HOST FIRST-LAST: the kernel gives no ephemeral port of HOST's netns out of
# this range, so a test may bind its ports explicitly (iperf3 --cport) without colliding with
# a connection that took one first (iperf3's own control connection, say).
bed_reserve_ports() { bed_sysctl "$1" "net.ipv4.ip_local_reserved_ports=$2"; }

# bed_iperf_mbps OUTJSON: receiver aggregate Mbit/s of one iperf3 run.
bed_iperf_mbps() { python3 "$BED_LIB_DIR/iperf_summary.py" --value receiver "$1"; }

# Shared L2 segments: many hosts on one bridge, for tests with more than two hosts per link.
#   bed_host sw 0; bed_segment sw 0            # bridge br0 in host sw's netns
#   bed_host h1 1; bed_host h2 2; ...
#   bed_ports sw 0 0 h1 h2 ...                # eth0 in each host, on br0
# A host's address on segment port IDX is 10.<IDX>.<N/256>.<N%256>/16 (N its host number), so
# a segment holds up to 65534 hosts; IPv6 (fd00:0:0:<IDX>::<N in hex>/64) only with
# BED_SEGMENT_V6=1.

# bed_segment SWITCH SEG: bridge br<SEG>, up, in host SWITCH's netns. Multicast snooping is
# off, so every multicast group (discovery's 224.0.0.200 and ff02::6d6c among them) floods to
# every port as on a plain switch; STP is off (the default), so a port forwards as soon as it
# has carrier. IPv6 is off in the switch's netns: its ports need no link-local addresses,
# DAD or MLD reports.
bed_segment() {
  local sw=$1 seg=$2
  bed_sysctl "$sw" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  bed_exec "$sw" ip link add "br$seg" type bridge mcast_snooping 0 ||
    bed_die "bridge br$seg in $sw"
  bed_exec "$sw" ip link set "br$seg" up || bed_die "br$seg up in $sw"
}

# bed_addr4_seg HOST IDX: HOST's address (no prefix length) on segment port eth<IDX>.
bed_addr4_seg() {
  [[ -n ${BED_HOSTNUM[$1]:-} ]] || bed_die "unknown host $1"
  printf '10.%s.%s.%s\n' "$2" $((BED_HOSTNUM[$1] / 256)) $((BED_HOSTNUM[$1] % 256))
}

# bed_ports SWITCH SEG IDX HOST...: put each HOST on segment SEG (bed_segment) by a veth pair,
# eth<IDX> in the host with its segment address (bed_addr4_seg), up, and br<SEG>p<N> enslaved
# to br<SEG> in SWITCH. As in bed_link, each end is created directly in its namespace. One
# `ip -batch` per namespace instead of a process per command: setting up 64 hosts takes a
# few seconds, not a minute.
bed_ports() {
  local sw=$1 seg=$2 idx=$3 h n swns ns
  shift 3
  swns=$(bed_ns "$sw")
  for h in "$@"; do
    ns=$(bed_ns "$h")
    n=${BED_HOSTNUM[$h]}
    printf 'link add eth%s netns %s type veth peer name br%sp%s netns %s\n' \
      "$idx" "$ns" "$seg" "$n" "$swns"
  done | ip -batch - || bed_die "veth pairs for segment $seg"
  for h in "$@"; do
    printf 'link set br%sp%s master br%s up\n' "$seg" "${BED_HOSTNUM[$h]}" "$seg"
  done | bed_exec "$sw" ip -batch - || bed_die "ports of br$seg in $sw"
  for h in "$@"; do
    n=${BED_HOSTNUM[$h]}
    {
      printf 'addr add 10.%s.%s.%s/16 dev eth%s\n' "$idx" $((n / 256)) $((n % 256)) "$idx"
      [[ ${BED_SEGMENT_V6:-0} != 1 ]] ||
        printf 'addr add fd00:0:0:%s::%x/64 dev eth%s nodad\n' "$idx" "$n" "$idx"
      printf 'link set eth%s up\n' "$idx"
    } | bed_exec "$h" ip -batch - || bed_die "eth$idx of $h"
  done
}

# bed_neigh_room ENTRIES: make room for ENTRIES more neighbour entries (IPv4 and IPv6). The
# kernel's neighbour tables are global, not per netns: every namespace's entries count
# against the root netns' gc_thresh3 (default 1024; past it new entries fail with "neighbor
# table overflow"), and only the root netns can set it. So this is the one thing the bed
# changes outside its namespaces: gc_thresh2/3 are raised (never lowered) by ENTRIES, and put
# back at cleanup unless someone changed them meanwhile.
bed_neigh_room() {
  local add=$1 fam key f old new
  for fam in ipv4 ipv6; do
    for key in gc_thresh2 gc_thresh3; do
      f=/proc/sys/net/$fam/neigh/default/$key
      old=$(<"$f") || bed_die "read $f"
      new=$((old + add))
      echo "$new" >"$f" || bed_die "write $f"
      bed_on_cleanup "[[ \$(<$f) == $new ]] && echo $old >$f"
    done
  done
}
