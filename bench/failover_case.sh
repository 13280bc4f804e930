#!/usr/bin/env bash
# One failover benchmark case in its own test bed: failover_case.sh MODE FAULT
#   MODE   mlink | mlink_flowlet (spread = "flowlet") | ecmp (kernel multipath route over the
#          same links, L4 hash) | mptcp (one MPTCP connection per iperf3 stream, a subflow per
#          link, in-kernel path manager: bench/run.sh's MPTCP case)
#   FAULT  oneway | admin_down_sender | admin_down_receiver | loss30 | flap
# Topology and load as the failure matrix (tests/e2e/lib/failover.sh): hosts a and b, 3 veth
# links shaped to 200 Mbit/s on both ends, iperf3 -P8 a -> b with 0.2 s receiver intervals.
# The fault hits eth1 at t=3 s and is repaired at t=7 s (flap: toggles until 7.5 s).
# Prints one line for bench/failover.sh:
#   bench_failover mode=M fault=F detect_a_ms= detect_b_ms= back_a_ms= back_b_ms= stalled=
#     stalled_half= longest_stall_s= before= during= after= retransmits=
# stalled: streams below 1 Mbit/s for more than 1 s; stalled_half: for 0.5 s or more.
# detect_*: fault -> the agent's map update taking eth1 out on that end (from the agent's
# log timestamps); back_*: repair -> eth1 back in; '-' where not applicable or not seen.
# Aggregates: before = 1 s .. fault, during = fault .. repair, after = repair + 5 s .. end.
# FO_SERIES_OUT=FILE: also write the per-interval aggregate and stalled streams there (JSON,
# bench/plots.py series).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MLINK_BUILD_DIR=${MLINK_BUILD_DIR:-$BENCH_DIR/../build}
MODE=${1:?mode: mlink|mlink_flowlet|ecmp|mptcp}
FAULT=${2:?fault}
# shellcheck source=../tests/e2e/lib/failover.sh
source "$BENCH_DIR/../tests/e2e/lib/failover.sh"
# shellcheck source=throughput_baselines.sh
source "$BENCH_DIR/throughput_baselines.sh" # ecmp_setup, warm_neighbours, ML_A

BENCH_LINKS=3
SECS=15

extra=()
case $MODE in
  mlink) fo_setup ;;
  mlink_flowlet) ML_NODE_TOML='spread = "flowlet"' fo_setup ;;
  ecmp)
    bed_require_root
    bed_init
    ml_two_hosts "$BENCH_LINKS" 200mbit
    # What an operator of ECMP would set: skip nexthops whose link lost carrier or whose
    # neighbour failed. Nothing makes ECMP notice a silent or lossy link.
    for h in a b; do
      bed_sysctl "$h" net.ipv4.conf.all.ignore_routes_with_linkdown=1 \
        net.ipv4.fib_multipath_use_neigh=1
    done
    ecmp_setup
    warm_neighbours
    BED_SERVER_INTERVAL=$FO_INTERVAL bed_iperf_server b "$FO_PORT"
    extra=(-B "$ML_A")
    ;;
  mptcp)
    bed_require_root
    bed_init
    ml_two_hosts "$BENCH_LINKS" 200mbit
    mptcp_endpoints
    warm_neighbours
    LD_PRELOAD=$MPTCP_PRELOAD BED_SERVER_INTERVAL=$FO_INTERVAL bed_iperf_server b "$FO_PORT"
    FO_DST=$(bed_addr4 b 0)
    ;;
  *) bed_die "unknown mode $MODE" ;;
esac

FAULT_AT=
fault_mark() { FAULT_AT=$(fo_now); }
case $FAULT in
  oneway | loss30 | admin_down_sender | admin_down_receiver | flap) ;;
  *) bed_die "unknown fault $FAULT" ;;
esac

if [ "$MODE" = mptcp ]; then
  LD_PRELOAD=$MPTCP_PRELOAD fo_iperf_start "$SECS"
else
  fo_iperf_start "$SECS" "${extra[@]}"
fi
fo_at 3
# The fault time is taken just before the action: the detection figures include its run time.
case $FAULT in
  oneway) fault_mark; ml_fault b eth1 ingress 1000000 ;;
  loss30) fault_mark; ml_fault b eth1 ingress 300000 ;;
  admin_down_sender) fault_mark; bed_exec a ip link set eth1 down ;;
  admin_down_receiver) fault_mark; bed_exec b ip link set eth1 down ;;
  flap) fault_mark; fo_flap a eth1 ;;
esac
FO_MARK[fault]=$FAULT_AT
[ "$FAULT" = flap ] || fo_at 7
REPAIR_AT=$(fo_now)
case $FAULT in
  oneway | loss30) ml_fault b eth1 ingress 0 ;;
  admin_down_sender) bed_exec a ip link set eth1 up ;;
  admin_down_receiver) bed_exec b ip link set eth1 up ;;
  flap) ;;
esac
FO_MARK[repair]=$REPAIR_AT
fo_wait_iperf

# Agent log times are local wall-clock HH:MM:SS.mmm, as is `date`.
log_times() { # HOST: fault -> down and repair -> up, ms, from HOST's agent log
  python3 - "$BED_TMP/mlinkd-$1.log" "$FAULT_AT" "$REPAIR_AT" <<'PY'
import datetime, re, sys
log, fault, repair = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
day = datetime.datetime.fromtimestamp(fault / 1000).date()
def epoch_ms(hms):
    t = datetime.datetime.combine(day, datetime.datetime.strptime(hms, "%H:%M:%S.%f").time())
    ms = int(t.timestamp() * 1000)
    return ms + 86400000 if ms < fault - 43200000 else ms
down = up = None
for line in open(log):
    m = re.match(r"(\d\d:\d\d:\d\d\.\d+) .*peer \d+\.\d+\.\d+\.\d+: link/state/buckets .*eth1=(up|down)/", line)
    if not m:
        continue
    t = epoch_ms(m.group(1))
    if down is None and m.group(2) == "down" and t >= fault:
        down = t - fault
    if up is None and m.group(2) == "up" and t >= repair:
        up = t - repair
f = lambda v: "-" if v is None else str(v)
print(f(down), f(up))
PY
}
da=- db=- ba=- bb=-
if [[ $MODE == mlink* ]]; then
  read -r da ba < <(log_times a)
  read -r db bb < <(log_times b)
fi
summary=$(python3 "$BED_LIB_DIR/iperf_summary.py" --stall-mbps "$FO_STALL_MBPS" \
  --stall-secs "$FO_STALL_SECS" "$FO_JSON")
stalled=$(awk '$1 == "stalls" {print $2}' <<<"$summary")
# Issue 15's flowlet target counts stalls from 0.5 s (3 receiver intervals of 0.2 s).
stalled_half=$(python3 "$BED_LIB_DIR/iperf_summary.py" --stall-mbps "$FO_STALL_MBPS" \
  --stall-secs 0.45 --value stalls "$FO_JSON")
longest=$(awk '$1 == "stall" { split($4, s, "="); if (s[2] > m) m = s[2] } END { printf "%.2f", m + 0 }' <<<"$summary")
retrans=$(awk '$1 == "retransmits" {print $2}' <<<"$summary")
tf=$(fo_t "$FAULT_AT")
tr=$(fo_t "$REPAIR_AT")
ta=$(awk -v r="$tr" 'BEGIN { printf "%.2f", r + 5 }') # a repaired lossy link is back within ~5 s
line="bench_failover mode=$MODE fault=$FAULT detect_a_ms=$da detect_b_ms=$db back_a_ms=$ba"
line+=" back_b_ms=$bb stalled=$stalled stalled_half=$stalled_half longest_stall_s=$longest before=$(fo_window 1 "$tf")"
line+=" during=$(fo_window "$tf" "$tr") after=$(fo_window "$ta" "$SECS") retransmits=$retrans"
echo "$line"
# The per-interval series for the plot (bench/failover.sh collects it); the bed's temp dir goes.
if [ -n "${FO_SERIES_OUT:-}" ]; then
  python3 "$BENCH_DIR/plots.py" series "$FO_JSON" --fault-s "$tf" --repair-s "$tr" \
    --stall-mbps "$FO_STALL_MBPS" --summary "$line" --out "$FO_SERIES_OUT"
fi
