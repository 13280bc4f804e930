#!/usr/bin/env bash
# Throughput baselines on the mlink test bed: 2 hosts, BENCH_LINKS veth links, each end shaped
# with tbf (BENCH_RATE). Cases, each BENCH_SECONDS per run, BENCH_REPEATS runs per
# parallelism in BENCH_PARALLEL, medians reported:
#   single_link  iperf3 to the peer's eth0 address: what one link gives
#   ecmp         kernel multipath route between ML-like /32 addresses on lo, L4 hash:
#                what per-flow spreading gives without mlink
# Output: a table, and one `bench_tput case=<name> parallel=<P> mbps=<median> runs=<a,b,c>`
# line per case and parallelism (also appended to $BENCH_OUT when set).
#
# Adding a case (e.g. mlink): define SETUP/TEARDOWN functions that act on hosts a and b after
# setup_topology (ML addresses: ML_A / ML_B), a bench_case_<name> function calling
#   run_case <name> <setup_fn> <teardown_fn> <dst> [extra iperf3 args...]
# and list <name> in BENCH_CASES. Sourcing this file defines everything without running it.
#
# Env: BENCH_SECONDS (10) BENCH_REPEATS (3) BENCH_PARALLEL ("8 4") BENCH_RATE (200mbit)
#      BENCH_LINKS (3) BENCH_CASES ("single_link ecmp") BENCH_OUT (unset) BED_KEEP_TMP (0)
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

declare -ga BENCH_RESULTS=()   # "name parallel median runs links_used"
BENCH_FAILURES=0

# ---- topology ---------------------------------------------------------------

setup_topology() {
  local i
  bed_host a 1
  bed_host b 2
  for ((i = 0; i < BENCH_LINKS; i++)); do
    bed_link a b "$i"
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

# Links that carried more than 5 % of a link's worth of traffic between two snapshots.
count_links_used() {
  local -a before after
  local i n=0 floor
  read -r -a before <<<"$1"
  read -r -a after <<<"$2"
  floor=$(python3 -c "print(int(${BENCH_RATE%mbit} * 1e6 / 8 * $BENCH_SECONDS * 0.05))")
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

# run_case NAME SETUP_FN TEARDOWN_FN DST [IPERF_EXTRA...]: for each parallelism, BENCH_REPEATS
# runs of BENCH_SECONDS from host a to DST; records the median receiver rate.
run_case() {
  local name=$1 setup=$2 teardown=$3 dst=$4 par r out mbps tx0 tx1 used retr
  shift 4
  "$setup"
  for par in $BENCH_PARALLEL; do
    local -a runs=() useds=() retrs=()
    for ((r = 1; r <= BENCH_REPEATS; r++)); do
      out="$BED_TMP/$name-P$par-$r.json"
      tx0=$(links_tx_bytes)
      if bed_iperf a "$dst" "$par" "$BENCH_SECONDS" "$out" "$@" && mbps=$(bed_iperf_mbps "$out"); then
        tx1=$(links_tx_bytes)
        used=$(count_links_used "$tx0" "$tx1")
        retr=$(python3 "$BED_LIB_DIR/iperf_summary.py" --value retransmits "$out")
        retrs+=("$retr")
        runs+=("$mbps")
        useds+=("$used")
        bed_log "$name -P$par run $r: $mbps Mbit/s, links used $used, retransmits $retr"
      else
        BENCH_FAILURES=$((BENCH_FAILURES + 1))
        bed_log "$name -P$par run $r FAILED: $(head -c 300 "$out" 2>/dev/null)"
      fi
    done
    local med joined used_joined retr_joined
    med=$(median "${runs[@]}")
    joined=$(IFS=,; echo "${runs[*]}")
    used_joined=$(IFS=,; echo "${useds[*]}")
    retr_joined=$(IFS=,; echo "${retrs[*]}")
    BENCH_RESULTS+=("$name $par $med ${joined:-NA} ${used_joined:-NA} ${retr_joined:-NA}")
  done
  "$teardown"
}

report() {
  local line name par med runs used retr
  printf '\n%-12s %4s %12s  %-36s %-11s %s\n' case P "median Mbps" "runs (Mbit/s)" "links used" retransmits
  for line in "${BENCH_RESULTS[@]}"; do
    read -r name par med runs used retr <<<"$line"
    printf '%-12s %4s %12s  %-36s %-11s %s\n' "$name" "$par" "$med" "$runs" "$used" "$retr"
  done
  echo
  for line in "${BENCH_RESULTS[@]}"; do
    read -r name par med runs used retr <<<"$line"
    echo "bench_tput case=$name parallel=$par mbps=$med runs=$runs links_used=$used retransmits=$retr"
  done | tee -a "${BENCH_OUT:-/dev/null}"
}

main() {
  bed_require_root ping
  bed_init
  bed_log "links=$BENCH_LINKS rate=$BENCH_RATE tbf burst=$BED_TBF_BURST latency=$BED_TBF_LATENCY" \
    "seconds=$BENCH_SECONDS repeats=$BENCH_REPEATS parallel='$BENCH_PARALLEL' cases='$BENCH_CASES'"
  setup_topology
  local c
  for c in $BENCH_CASES; do
    declare -F "bench_case_$c" >/dev/null || bed_die "unknown case $c"
    "bench_case_$c"
  done
  report
  ((BENCH_FAILURES == 0)) || bed_die "$BENCH_FAILURES iperf3 runs failed"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
