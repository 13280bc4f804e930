#!/usr/bin/env bash
# Demo of mlink's main job: two hosts joined by three 200 Mbit/s links; one
# TCP transfer between their ML addresses uses all three. Runs in private
# network namespaces and removes everything when done. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${MLINK_BUILD_DIR:-build}
if [ ! -x "$BUILD/mlinkd" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j "$(nproc)" >/dev/null
fi
export MLINK_BUILD_DIR=$PWD/$BUILD
source tests/e2e/lib/bed.sh
source tests/e2e/lib/mlink.sh
bed_require_root
bed_init
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "two hosts (network namespaces), three veth links shaped to 200 Mbit/s each"
ml_two_hosts 3 200mbit
bed_exec a ip -br addr show | grep eth

say "mlinkd on both hosts (config of host a below)"
cfg_a=$(ml_config a 1 2 3)
cat "$cfg_a"
ml_start a "$cfg_a"
ml_start b "$(ml_config b 2 1 3)"
ml_wait_links a b
bed_exec a ip -br addr show ml0
bed_exec a "$MLINKCTL" -n "$(ml_node_id a)" show peers

say "ping the peer's ML addresses"
bed_exec a ping -c 2 -i 0.2 10.88.0.2 | tail -2
bed_exec a ping -6 -c 2 -i 0.2 fd88::2 | tail -2

bed_iperf_server b 5201
say "baseline: iperf3 -P8 over one link (to the peer's eth0 address), 5 s"
bed_iperf a 10.0.0.2 8 5 "$BED_TMP/single.json" -p 5201
echo "single link: $(bed_iperf_mbps "$BED_TMP/single.json") Mbit/s"

say "mlink: iperf3 -P8 to the peer's ML address 10.88.0.2, 5 s"
bed_iperf a 10.88.0.2 8 5 "$BED_TMP/ml.json" -p 5201
echo "over ml0:    $(bed_iperf_mbps "$BED_TMP/ml.json") Mbit/s"
bed_exec a "$MLINKCTL" -n "$(ml_node_id a)" show peers

say "the peer map as bpftool prints it (first slot)"
dump=$(bpftool map dump pinned "/sys/fs/bpf/mlink/$(ml_node_id a)/ml_peers")
head -24 <<<"$dump"  # not a pipe: head closing early would fail the script under pipefail

say "stopping the agents: everything they created goes away"
ml_stop a
ml_stop b
bed_exec a ip -br link show | grep -q ml0 && echo "ml0 still there!" || echo "no ml0 left on host a"
tail -3 "$BED_TMP/mlinkd-a.log"
