#!/usr/bin/env bash
# mlink benchmarks, every figure as a ratio against a baseline measured in the
# same run:
#  1. per-packet cost of ml_egress (BPF_PROG_TEST_RUN) net of an empty program;
#  2. goodput over BENCH_LINKS × tbf BENCH_RATE links, iperf3 -P8, -P4 and -P1:
#     mlink (flow mode; with the sender's TSQ at 64 KiB; loose receive; flowlet mode) against a
#     single link, kernel ECMP and MPTCP on the same topology, interleaved; retransmits,
#     reordering, qdisc and receiver drops, CPU per Gbit/s (throughput_baselines.sh: run_case);
#     JSON in BENCH_JSON (bench/results/goodput.json) and its plot beside it (.png, needs
#     python3-matplotlib). BENCH_RATE=none: unshaped veth links, no plot (ratios to one link).
# Usage: sudo bench/run.sh   (env as in throughput_baselines.sh; MLINK_BUILD_DIR; BENCH_JSON;
#   BENCH_FAILOVER=1 also runs the one-way failover against ECMP: bench/failover.sh)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MLINK_BUILD_DIR=${MLINK_BUILD_DIR:-$BENCH_DIR/../build}
BENCH_PARALLEL=${BENCH_PARALLEL:-"8 4 1"}
BENCH_JSON=${BENCH_JSON:-$BENCH_DIR/results/goodput.json}
read -r LOAD_START < /proc/loadavg
source "$BENCH_DIR/throughput_baselines.sh"
source "$BENCH_DIR/../tests/e2e/lib/mlink.sh"
BENCH_CASES=${BENCH_CASES_OVERRIDE:-"single_link ecmp mlink mlink_sockq64k mlink_tsq64k mlink_loose mlink_flowlet mlink_flowlet_nolimit mptcp"}
BENCH_OUT=${BENCH_OUT:-$(mktemp /tmp/mlink-bench.XXXXXX)}

mlink_setup() {
  ml_start a "$(ml_config a 1 2 "$BENCH_LINKS")"
  ml_start b "$(ml_config b 2 1 "$BENCH_LINKS")"
  ml_wait_links a b
}
mlink_teardown() { ml_stop a; ml_stop b; }
bench_case_mlink() { run_case mlink mlink_setup mlink_teardown "$ML_B"; }
# Flowlet mode (spread = "flowlet", default gap and socket_queue_limit): one flow may use
# every link.
mlink_flowlet_setup() { ML_NODE_TOML='spread = "flowlet"' mlink_setup; }
bench_case_mlink_flowlet() { run_case mlink_flowlet mlink_flowlet_setup mlink_teardown "$ML_B"; }
# Flowlet mode without its default socket_queue_limit (0): the gap alone against reordering.
mlink_flowlet_nolimit_setup() {
  ML_NODE_TOML='spread = "flowlet"
socket_queue_limit = 0' mlink_setup
}
bench_case_mlink_flowlet_nolimit() {
  run_case mlink_flowlet_nolimit mlink_flowlet_nolimit_setup mlink_teardown "$ML_B"
}

# Receive without the ingress program (rx_mode = "loose": the links' rp_filter loose instead);
# unshaped (BENCH_RATE=none) it shows what the ingress redirect into ml0 costs.
mlink_loose_setup() {
  ml_start a "$(ml_config a 1 2 "$BENCH_LINKS" 'rx_mode = "loose"')"
  ml_start b "$(ml_config b 2 1 "$BENCH_LINKS" 'rx_mode = "loose"')"
  ml_wait_links a b
}
bench_case_mlink_loose() { run_case mlink_loose mlink_loose_setup mlink_teardown "$ML_B"; }

# mlink's own back-pressure: [node] socket_queue_limit on the sender. ml0's egress refuses a
# socket's packet while the socket has over 64 KiB queued in the host, and TCP takes that as
# local congestion (bpf/lib/socket_queue.h).
mlink_sockq_setup() {
  ml_start a "$(ml_config a 1 2 "$BENCH_LINKS" 'socket_queue_limit = 65536')"
  ml_start b "$(ml_config b 2 1 "$BENCH_LINKS")"
  ml_wait_links a b
}
bench_case_mlink_sockq64k() { run_case mlink_sockq64k mlink_sockq_setup mlink_teardown "$ML_B"; }

# The host's back-pressure mitigation (docs/BENCHMARKS.md, "Retransmits"): a drop in a link's qdisc
# after bpf_redirect_neigh never reaches TCP as local congestion, so the sender's TCP Small
# Queues limit is what keeps the qdisc from overflowing. 64 KiB per socket (the default is
# 4 MiB, so the floor of two GSO skbs, ~130 KiB, rules): 8 flows stay within one tbf queue.
mlink_tsq_setup() {
  TSQ_BEFORE=$(bed_exec a sysctl -n net.ipv4.tcp_limit_output_bytes)
  bed_sysctl a net.ipv4.tcp_limit_output_bytes=65536
  mlink_setup
}
mlink_tsq_teardown() {
  mlink_teardown
  bed_sysctl a "net.ipv4.tcp_limit_output_bytes=$TSQ_BEFORE"
}
bench_case_mlink_tsq64k() { run_case mlink_tsq64k mlink_tsq_setup mlink_tsq_teardown "$ML_B"; }

# MPTCP (throughput_baselines.sh: mptcp_endpoints), its own iperf3 server under the preload.
MPTCP_PORT=$((BED_IPERF_PORT + 1))
mptcp_setup() {
  mptcp_endpoints
  bed_bg b iperf3-mptcp.log env LD_PRELOAD="$MPTCP_PRELOAD" taskset -c "${BED_SERVER_CPU:-1}" \
    iperf3 -s -p "$MPTCP_PORT" -J -i 0.1
  MPTCP_SERVER=$BED_LAST_PID
  bed_wait_tcp_listen b "$MPTCP_PORT"
}
mptcp_teardown() {
  bed_kill "$MPTCP_SERVER"
  bed_exec b ip mptcp endpoint flush
}
# The client inherits LD_PRELOAD through run_case (bed_iperf has no wrapper hook); nothing
# else there opens a TCP socket.
bench_case_mptcp() {
  LD_PRELOAD=$MPTCP_PRELOAD run_case mptcp mptcp_setup mptcp_teardown "$(bed_addr4 b 0)" -p "$MPTCP_PORT"
}

echo "== per-packet cost (BPF_PROG_TEST_RUN, 64-byte IPv4 TCP, 10^6 repeats, median of 7)"
"$MLINK_BUILD_DIR/bench/bench_bpf_cost" | tee -a "$BENCH_OUT"

echo "== goodput over $BENCH_LINKS × tbf $BENCH_RATE"
main

# Ratios: shaped, to the limit (links × the single link); unshaped (BENCH_RATE=none: CPU-bound),
# to the single link itself.
python3 - "$BENCH_OUT" "$BENCH_LINKS" "$BENCH_RATE" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
links = int(sys.argv[2]) if sys.argv[3] != "none" else 1
ns = dict(re.findall(r"bench_bpf_cost case=(\S+) ns=([\d.]+)", text))
t = {(c, p): float(m) for c, p, m in re.findall(r"bench_tput case=(\S+) parallel=(\d+) mbps=([\d.]+)", text)}
print("\n== ratios (same run)")
if "empty" in ns and "egress_peer" in ns:
    net = float(ns["egress_peer"]) - float(ns["empty"])
    print(f"egress cost net of empty program: {net:.0f} ns/packet (target <= 50)")
for p in ("8", "4", "1"):
    s, e = t.get(("single_link", p)), t.get(("ecmp", p))
    for case in sorted({c for c, q in t if q == p and c not in ("single_link", "ecmp")}):
        m = t[(case, p)]
        if s:
            print(f"-P{p}: {case} {m:.1f} Mbit/s = {m / (links * s):.3f} x {links} x single link ({s:.1f})"
                  + (f", {m / e:.3f} x ECMP ({e:.1f})" if e else ""))
PY
echo "raw results: $BENCH_OUT"

# The plot needs matplotlib (apt: python3-matplotlib), which a python3 earlier in PATH may lack.
PY=python3
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import matplotlib' 2>/dev/null; then PY=$p; break; fi
done
if [[ $BENCH_RATE != none ]]; then # the plot's bars are ratios to links × single link
  "$PY" "$BENCH_DIR/plots.py" goodput --input "$BENCH_OUT" --json "$BENCH_JSON" \
    --png "${BENCH_JSON%.json}.png" --links "$BENCH_LINKS" --rate-mbps "${BENCH_RATE%mbit}" \
    --seconds "$BENCH_SECONDS" --repeats "$BENCH_REPEATS" --load-start "$LOAD_START" \
    --command "sudo BENCH_SECONDS=$BENCH_SECONDS BENCH_REPEATS=$BENCH_REPEATS bench/run.sh"
fi

# (BENCH_FAILOVER=1) throughput through a one-way silent failure, mlink and ECMP: its own JSON
# and plot (bench/results/failover.*).
if [[ ${BENCH_FAILOVER:-0} == 1 ]]; then
  echo "== failover against ECMP (bench/failover.sh)"
  FO_BENCH_FAULTS=${FO_BENCH_FAULTS:-oneway} bash "$BENCH_DIR/failover.sh"
fi

# 3. (BENCH_SCALE=1) one agent against N simulated peers × 4 links: bench/scale.sh (its own
#    JSON, table and plot; SCALE_PEERS picks the sizes).
if [[ ${BENCH_SCALE:-0} == 1 ]]; then
  echo "== scale: one mlinkd, simulated peers (bench/scale.sh)"
  "$BENCH_DIR/scale.sh"
fi
