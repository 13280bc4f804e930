#!/usr/bin/env bash
# The demo, as root on Debian bookworm (about a minute once built): two hosts in network
# namespaces joined by three 200 Mbit/s veth links, mlinkd on both. A live view shows each
# link's throughput and state on both hosts while iperf3 -P8 runs over one link, then over
# ml0 (all three links); a one-way silent failure hits eth1 (b drops everything a sends on
# it, carrier up) and both agents take it out; then it is repaired. A summary follows.
# Installs missing Debian packages (ci/install-deps.sh demo) and builds what it runs.
# Ctrl-C at any moment removes everything of the run: namespaces with their devices,
# processes, bpffs pins, files in /run/mlink, the temp dir.
#   MLINK_BUILD_DIR   build directory (default: build/)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "ci/demo.sh: run it as root (network namespaces, BPF)" >&2; exit 1; }
bash ci/install-deps.sh --check demo >/dev/null || bash ci/install-deps.sh demo

BUILD=$(realpath -m "${MLINK_BUILD_DIR:-build}")
echo "ci/demo: building mlinkd, mlinkctl and ml-fault in $BUILD (the first time takes minutes)"
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target mlinkd mlinkctl ml-fault >/dev/null

export MLINK_BUILD_DIR=$BUILD
source tests/e2e/lib/bed.sh
source tests/e2e/lib/mlink.sh

FAULT_LINK=eth1
SINGLE_SECS=6       # iperf3 over one link
ML_SECS=22          # iperf3 over ml0: the failure at FAULT_AT, the repair at REPAIR_AT
FAULT_AT=7
REPAIR_AT=14
DEMO_START=$(date +%s%3N)

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

# demo_mark KEY TEXT: a mark for the view and the summary (ci/demo_events.py).
demo_mark() { echo "$(date +%s%3N) $1 $2" >>"$BED_TMP/phases"; }

# demo_at SECS: sleep until SECS after the transfer over ml0 started.
demo_at() {
  local left
  left=$(awk -v s="$1" -v t0="$ML_T0" -v now="$(date +%s%3N)" \
    'BEGIN { d = s - (now - t0) / 1000; printf "%.3f", (d > 0 ? d : 0) }')
  sleep "$left"
}

# demo_cleanup (a bed cleanup hook, so it runs before the bed kills what it started and
# deletes the namespaces): the agents get a TERM first, since each removes its own pins,
# ml0 and /run/mlink files; whatever an agent killed or interrupted while starting left
# outside the namespaces goes after it.
demo_cleanup() {
  local ns pid t ino h agents=()
  for ns in $(ip netns list | awk -v p="ml${BED_RUNID}" 'index($1, p) == 1 { print $1 }'); do
    for pid in $(ip netns pids "$ns"); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != mlinkd ] || agents+=("$pid")
    done
    ino=$(stat -L -c %i "/run/netns/$ns") && rm -f "/sys/fs/bpf/ml-fault/$ino"-*
  done
  if ((${#agents[@]})); then
    kill -TERM "${agents[@]}" 2>/dev/null || true
    for ((t = 0; t < 50; t++)); do
      kill -0 "${agents[@]}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${agents[@]}" 2>/dev/null || true
  fi
  for h in a b; do
    rm -rf "/sys/fs/bpf/mlink/$(ml_node_id "$h")"
    rm -f "/run/mlink/$(ml_node_id "$h")".*
  done
}

# On exit: a second Ctrl-C must not cut the cleanup short, and an interrupted run removes
# its temp dir too (the bed keeps it after a failure, for the logs).
demo_on_exit() {
  local rc=$?
  trap '' INT TERM
  [ ! -t 1 ] || printf '\033[?25h'  # the view hides the cursor
  if ((rc == 130 || rc == 143)); then
    echo "ci/demo: interrupted; removing everything of run $BED_RUNID" >&2
    bed_cleanup 0
  else
    bed_cleanup "$rc"
  fi
  exit "$rc"
}

bed_require_root
trap demo_on_exit EXIT  # before bed_init too: Ctrl-C while it makes the temp dir
trap 'exit 130' INT
trap 'exit 143' TERM
bed_init
trap demo_on_exit EXIT  # instead of the bed's own
bed_on_cleanup demo_cleanup

BED_START=$(date +%s%3N)
say "two hosts a and b (network namespaces), three veth links eth0..eth2 shaped to 200 Mbit/s"
ml_two_hosts 3 200mbit
say "mlinkd on both: ml0 10.88.0.1 on a, 10.88.0.2 on b, BFD with echo every 30 ms on each link"
ml_start a "$(ml_config a 1 2 3)"
ml_start b "$(ml_config b 2 1 3)"
ml_wait_links a b
echo "   all three links up on both ends, $(($(date +%s%3N) - BED_START)) ms after the bed was started"
for h in a b; do
  bed_bg "$h" "events-$h.json" "$MLINKCTL" -n "$(ml_node_id "$h")" -j monitor
done
# A server per transfer: one that has just finished a test can still refuse the next
# ("the server is busy running a test") on a busy machine.
bed_iperf_server b 5201
bed_iperf_server b 5202
# The fault program goes on b's eth1 now, dropping nothing: at the failure only its loss
# rate changes (a map write), so the "fault" mark is within a few ms of the first drop.
ml_fault b "$FAULT_LINK" ingress 0

demo_mark setup "links up; the live view starts (throughput from the links' counters)"
python3 ci/demo_view.py --run-dir "$BED_TMP" --mlinkctl "$MLINKCTL" --fault-link "$FAULT_LINK" \
  --host "a:$(bed_ns a):$(ml_node_id a)" --host "b:$(bed_ns b):$(ml_node_id b)" &
VIEW_PID=$!
BED_PIDS+=("$VIEW_PID")

demo_mark single "1/4 one link: iperf3 -P8 from a to b's eth0 address, ${SINGLE_SECS} s"
bed_iperf a 10.0.0.2 8 "$SINGLE_SECS" "$BED_TMP/single.json" -p 5201 ||
  bed_die "iperf3 over one link failed: $(head -c 300 "$BED_TMP/single.json")"

ML_T0=$(date +%s%3N)
demo_mark mlink "2/4 mlink: iperf3 -P8 from a to b's ML address 10.88.0.2 (all links), ${ML_SECS} s"
bed_iperf a 10.88.0.2 8 "$ML_SECS" "$BED_TMP/mlink.json" -p 5202 -i 0.1 &
IPERF_PID=$!
BED_PIDS+=("$IPERF_PID")
demo_at "$FAULT_AT"
ml_fault b "$FAULT_LINK" ingress 1000000
demo_mark fault "3/4 one-way silent failure: b drops all a sends on $FAULT_LINK (carrier up)"
demo_at "$REPAIR_AT"
ml_fault b "$FAULT_LINK" ingress 0
demo_mark repair "4/4 repair: $FAULT_LINK delivers again"
wait "$IPERF_PID" || bed_die "iperf3 over ml0 failed: $(head -c 300 "$BED_TMP/mlink.json")"
bed__forget_pid "$IPERF_PID"
demo_mark end "transfer over; summary below"

for ((t = 0; t < 50; t++)); do kill -0 "$VIEW_PID" 2>/dev/null || break; sleep 0.1; done
bed_kill "$VIEW_PID"
bed_exec a "$MLINKCTL" -n "$(ml_node_id a)" -j show peers >"$BED_TMP/peers-a.json"
echo
python3 ci/demo_summary.py --run-dir "$BED_TMP" --fault-link "$FAULT_LINK"
ml_stop a
ml_stop b
bed_cleanup 0
left=$(ip netns list | grep -c "^ml${BED_RUNID}" || true)
echo "demo took $(($(date +%s%3N) - DEMO_START)) ms; agents stopped, namespaces of run $BED_RUNID left: $left"
