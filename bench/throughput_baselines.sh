#!/usr/bin/env bash
# Throughput baselines on the mlink test bed: 2 hosts, BENCH_LINKS veth links, each end shaped
# with tbf (BENCH_RATE). Cases, each BENCH_SECONDS per run, BENCH_REPEATS runs per
# parallelism in BENCH_PARALLEL (interleaved: every case once per repeat), medians reported:
#   single_link  iperf3 to the peer's eth0 address: what one link gives
#   ecmp         kernel multipath route between ML-like /32 addresses on lo, L4 hash:
#                what per-flow spreading gives without mlink
# Output: a table, and one `bench_tput case=<name> parallel=<P> mbps=<median> runs=<a,b,c>
# links_used= retransmits= reorder= dsack= undo= host_queue= qdisc_drops= rx_drops= cpu_s_per_gbit=`
# line per case and parallelism
# (every figure per run; also appended to $BENCH_OUT when set).
#
# Adding a case (e.g. mlink): define SETUP/TEARDOWN functions that act on hosts a and b after
# setup_topology (ML addresses: ML_A / ML_B), a bench_case_<name> function calling
#   run_case <name> <setup_fn> <teardown_fn> <dst> [extra iperf3 args...]
# and list <name> in BENCH_CASES. Sourcing this file defines everything without running it.
#
# Env: BENCH_SECONDS (10) BENCH_REPEATS (3) BENCH_PARALLEL ("8 4") BENCH_RATE (200mbit; none:
#      unshaped)
#      BENCH_LINKS (3) BENCH_CASES ("single_link ecmp") BENCH_OUT (unset) BED_KEEP_TMP (0)
#      BENCH_PERF_DIR (unset: a `perf record -a -g` of every run there; the CPU figure then
#      includes perf's own)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/e2e/lib/bed.sh
source "$BENCH_DIR/../tests/e2e/lib/bed.sh"

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_REPEATS=${BENCH_REPEATS:-3}
BENCH_PARALLEL=${BENCH_PARALLEL:-"8 4"}
BENCH_RATE=${BENCH_RATE:-200mbit}
BENCH_LINKS=${BENCH_LINKS:-3}
BENCH_CASES=${BENCH_CASES:-"single_link ecmp"}
ML_A=10.88.0.1
ML_B=10.88.0.2

BENCH_FAILURES=0

# ---- topology ---------------------------------------------------------------

setup_topology() {
  local i
  bed_host a 1
  bed_host b 2
  for ((i = 0; i < BENCH_LINKS; i++)); do
    bed_link a b "$i"
    [[ $BENCH_RATE == none ]] && continue # unshaped: CPU-bound veth, what the datapath costs
    bed_shape a "eth$i" "$BENCH_RATE"
    bed_shape b "eth$i" "$BENCH_RATE"
  done
  bed_iperf_server b
  warm_neighbours
}

# Resolve every link's neighbour before measuring, so no case pays for ARP.
warm_neighbours() {
  local i
  for ((i = 0; i < BENCH_LINKS; i++)); do
    bed_exec a ping -c 1 -w 2 -q "$(bed_addr4 b "$i")" >/dev/null
  done
}

# ---- cases ------------------------------------------------------------------

no_op() { :; }

# ML-like addresses on lo (no dummy device in this kernel) and a multipath route over all
# links in both directions; hash policy 1 (L4) so flows, not host pairs, are spread.
ecmp_setup() {
  local h peer ml peer_ml i hops
  for h in a b; do
    if [[ $h == a ]]; then peer=b ml=$ML_A peer_ml=$ML_B; else peer=a ml=$ML_B peer_ml=$ML_A; fi
    hops=()
    for ((i = 0; i < BENCH_LINKS; i++)); do
      hops+=(nexthop via "$(bed_addr4 "$peer" "$i")" dev "eth$i")
    done
    bed_exec "$h" ip addr add "$ml/32" dev lo
    bed_sysctl "$h" net.ipv4.fib_multipath_hash_policy=1
    bed_exec "$h" ip route add "$peer_ml/32" "${hops[@]}"
  done
}

ecmp_teardown() {
  bed_exec a ip route del "$ML_B/32" || true
  bed_exec b ip route del "$ML_A/32" || true
  bed_exec a ip addr del "$ML_A/32" dev lo || true
  bed_exec b ip addr del "$ML_B/32" dev lo || true
  bed_sysctl a net.ipv4.fib_multipath_hash_policy=0
  bed_sysctl b net.ipv4.fib_multipath_hash_policy=0
}

# MPTCP, the kernel's in-kernel path manager: b announces its other links' addresses, a opens
# a subflow to each (source chosen by routing: the link of that subnet). iperf3 3.12 has no
# --mptcp: the preload shim (bench/mptcp_preload.c) makes its TCP sockets MPTCP ones, and the
# caller runs server and client under LD_PRELOAD=$MPTCP_PRELOAD.
MPTCP_PRELOAD=${MLINK_BUILD_DIR:-$BENCH_DIR/../build}/bench/mptcp_preload.so
mptcp_endpoints() {
  local h i
  [[ -f $MPTCP_PRELOAD ]] || bed_die "no $MPTCP_PRELOAD: cmake --build build --target mptcp_preload"
  for h in a b; do
    bed_exec "$h" ip mptcp limits set subflows $((BENCH_LINKS - 1)) add_addr_accepted $((BENCH_LINKS - 1))
  done
  for ((i = 1; i < BENCH_LINKS; i++)); do
    bed_exec b ip mptcp endpoint add "$(bed_addr4 b "$i")" dev "eth$i" signal
  done
}

bench_case_single_link() { run_case single_link no_op no_op "$(bed_addr4 b 0)"; }
bench_case_ecmp() { run_case ecmp ecmp_setup ecmp_teardown "$ML_B" -B "$ML_A"; }

# ---- measurement ------------------------------------------------------------

# tx bytes of every link on host a, space separated.
links_tx_bytes() {
  local i tx
  for ((i = 0; i < BENCH_LINKS; i++)); do
    read -r _ tx _ _ < <(bed_dev_stats a "eth$i")
    printf '%s ' "$tx"
  done
}

# Packets host a's link qdiscs dropped so far (all links): a sender-side queue overflow.
links_qdisc_drops() { bed_qdisc_drops a "$BENCH_LINKS"; }

# Links that carried more than 5 % of a link's worth of traffic between two snapshots.
count_links_used() {
  local -a before after
  local i n=0 floor
  read -r -a before <<<"$1"
  read -r -a after <<<"$2"
  # Unshaped, a link's worth is taken as 1 Gbit/s.
  local rate=${BENCH_RATE%mbit}
  [[ $rate == none ]] && rate=1000
  floor=$(python3 -c "print(int($rate * 1e6 / 8 * $BENCH_SECONDS * 0.05))")
  for ((i = 0; i < BENCH_LINKS; i++)); do
    ((after[i] - before[i] > floor)) && n=$((n + 1))
  done
  echo "$n"
}

median() {
  (($#)) || { echo NA; return; }
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1}
    END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# Busy CPU time of the whole machine so far, in USER_HZ ticks: the sender, the receiver and
# the softirqs that carry the packets all count, wherever they ran.
cpu_busy_ticks() {
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}

# The sender's TCP MIBs (per netns): /proc/net/snmp and /proc/net/netstat, for tcp_counters.py.
tcp_snapshot() {
  bed_exec a cat /proc/net/snmp /proc/net/netstat >"$1.a"
  bed_exec b cat /proc/net/snmp /proc/net/netstat >"$1.b"
}

# run_case NAME SETUP_FN TEARDOWN_FN DST [IPERF_EXTRA...]: sets the case up, makes one run of
# BENCH_SECONDS from host a to DST per parallelism in BENCH_PARALLEL, tears it down. main
# calls every case once per repeat, so the cases' runs interleave. Each run appends
#   "name parallel mbps links_used retransmits reorder dsack undo host_queue qdisc_drops rx_drops
#    cpu_s_per_gbit"
# to BENCH_RUNS (the counters: tcp_counters.py, BENCH_COUNTERS_ALL=1 logs every TCP counter
# that moved; qdisc_drops: a's link qdiscs; CPU: busy
# seconds of the whole machine per Gbit delivered, so it means something on an idle machine only).
declare -ga BENCH_RUNS=()
BENCH_REPEAT=1
run_case() {
  local name=$1 setup=$2 teardown=$3 dst=$4 par out mbps tx0 tx1 used retr c0 c1 cpu q0 q1
  shift 4
  "$setup"
  for par in $BENCH_PARALLEL; do
    out="$BED_TMP/$name-P$par-$BENCH_REPEAT.json"
    tx0=$(links_tx_bytes)
    tcp_snapshot "$out.tcp0"
    q0=$(links_qdisc_drops)
    c0=$(cpu_busy_ticks)
    local perf_pid=
    if [[ -n ${BENCH_PERF_DIR:-} ]]; then # a profile of the whole machine over the run
      perf record -q -a -g -o "$BENCH_PERF_DIR/$name-P$par-$BENCH_REPEAT.data" -- sleep "$BENCH_SECONDS" \
        >/dev/null 2>&1 &
      perf_pid=$!
    fi
    if bed_iperf a "$dst" "$par" "$BENCH_SECONDS" "$out" "$@" && mbps=$(bed_iperf_mbps "$out"); then
      [[ -z $perf_pid ]] || wait "$perf_pid"
      c1=$(cpu_busy_ticks)
      tcp_snapshot "$out.tcp1"
      q1=$(links_qdisc_drops)
      tx1=$(links_tx_bytes)
      used=$(count_links_used "$tx0" "$tx1")
      retr=$(python3 "$BED_LIB_DIR/iperf_summary.py" --value retransmits "$out")
      local -A k=()
      local kv
      for kv in $(python3 "$BENCH_DIR/tcp_counters.py" "$out.tcp0.a" "$out.tcp1.a" "$out.tcp0.b" "$out.tcp1.b"); do
        k[${kv%%=*}]=${kv#*=}
      done
      cpu=$(python3 -c "import sys; t, m, s = map(float, sys.argv[1:]); print(f'{t / 100 / (m * s / 1000):.2f}' if m else 'NA')" \
        "$((c1 - c0))" "$mbps" "$BENCH_SECONDS")
      BENCH_RUNS+=("$name $par $mbps $used $retr ${k[reorder]} ${k[dsack]} ${k[undo]} ${k[host_queue]} $((q1 - q0)) ${k[rx_drops]} $cpu")
      bed_log "$name -P$par run $BENCH_REPEAT: $mbps Mbit/s, links used $used, retransmits $retr," \
        "reorder ${k[reorder]}, dsack ${k[dsack]}, undo ${k[undo]}, held back ${k[host_queue]}, qdisc drops $((q1 - q0))," \
        "receiver drops ${k[rx_drops]}, ${cpu} CPU s/Gbit"
      [[ -z ${BENCH_COUNTERS_ALL:-} ]] || {
        python3 "$BENCH_DIR/tcp_counters.py" --all "$out.tcp0.a" "$out.tcp1.a" | sed 's/^/  a /'
        python3 "$BENCH_DIR/tcp_counters.py" --all "$out.tcp0.b" "$out.tcp1.b" | sed 's/^/  b /'
      } >&2
    else
      [[ -z $perf_pid ]] || wait "$perf_pid" || true
      BENCH_FAILURES=$((BENCH_FAILURES + 1))
      bed_log "$name -P$par run $BENCH_REPEAT FAILED: $(head -c 300 "$out" 2>/dev/null)"
    fi
  done
  "$teardown"
}

# One line per case and parallelism, in the order first run: the median rate and every run's
# figures (comma-joined, run order).
report() {
  python3 - "${BENCH_RUNS[@]}" <<'PY' | tee -a "${BENCH_OUT:-/dev/null}"
import statistics, sys
fields = ("mbps", "links_used", "retransmits", "reorder", "dsack", "undo", "host_queue",
          "qdisc_drops", "rx_drops", "cpu_s_per_gbit")
rows = {}
for run in sys.argv[1:]:
    name, par, *vals = run.split()
    rows.setdefault((name, par), []).append(dict(zip(fields, vals)))
def med(vals):
    nums = [float(v) for v in vals if v != "NA"]
    return f"{statistics.median(nums):.1f}" if nums else "NA"
print(f"\n{'case':<14} {'P':>2} {'median Mbps':>11}  {'runs (Mbit/s)':<34} {'retransmits':<22} {'qdisc drops':<16} {'reorder':<16} dsack")
for (name, par), runs in rows.items():
    col = lambda f: ",".join(r[f] for r in runs)
    print(f"{name:<14} {par:>2} {med(r['mbps'] for r in runs):>11}  {col('mbps'):<34} {col('retransmits'):<22} {col('qdisc_drops'):<16} {col('reorder'):<16} {col('dsack')}")
print()
for (name, par), runs in rows.items():
    col = lambda f: ",".join(r[f] for r in runs)
    print(f"bench_tput case={name} parallel={par} mbps={med(r['mbps'] for r in runs)} runs={col('mbps')} "
          + " ".join(f"{f}={col(f)}" for f in fields[1:]))
PY
}

main() {
  bed_require_root ping
  bed_init
  bed_log "links=$BENCH_LINKS rate=$BENCH_RATE tbf burst=$BED_TBF_BURST latency=$BED_TBF_LATENCY" \
    "seconds=$BENCH_SECONDS repeats=$BENCH_REPEATS parallel='$BENCH_PARALLEL' cases='$BENCH_CASES'"
  setup_topology
  local c r i
  local -a cases
  read -r -a cases <<<"$BENCH_CASES"
  for c in "${cases[@]}"; do
    declare -F "bench_case_$c" >/dev/null || bed_die "unknown case $c"
  done
  # Repeat-major, the case order rotated each repeat: a drift in the machine's load spreads
  # over every case instead of landing on the ones that ran last.
  for ((r = 1; r <= BENCH_REPEATS; r++)); do
    for ((i = 0; i < ${#cases[@]}; i++)); do
      c=${cases[(i + r - 1) % ${#cases[@]}]}
      BENCH_REPEAT=$r "bench_case_$c"
    done
  done
  report
  ((BENCH_FAILURES == 0)) || bed_die "$BENCH_FAILURES iperf3 runs failed"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
