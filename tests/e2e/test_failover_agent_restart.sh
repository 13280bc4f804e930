#!/usr/bin/env bash
# The peer's agent killed and restarted under load (issue 4, acceptance 2): iperf3 -P8 a -> b
# over 3 × 200 Mbit/s links; at t=3 s b's mlinkd gets SIGKILL (no cleanup runs) and is
# started again FO_RESTART_DELAY s later (default 2: longer than BFD's 90 ms detection and
# TCP's 200 ms RTO, so the datapath must carry on without its agent) with the same config. Nothing may be lost: iperf3 ends normally with
# every stream, no stream stays under 1 Mbit/s for more than 1 s (retransmits are fine), the
# new agent runs with every link up on both ends, and every link carries traffic again.
# Needs restart survival (a persistent ML device, adoption of the pinned maps and attached
# programs, BFD that outlives the agent); fails until that lands. FO_RESTART_HOST=a kills
# the sender's agent instead.
source "$(dirname "$0")/lib/failover.sh"
fo_setup
fo_iperf_start 18
fo_at 3
k=${FO_RESTART_HOST:-b}
pidvar=ML_PID_$k
pid=${!pidvar}
[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = mlinkd ] || bed_die "pid $pid is not mlinkd"
kill -KILL "$pid"
fo_mark fault "SIGKILL to $k's mlinkd (pid $pid)"
wait "$pid" 2>/dev/null || true
bed__forget_pid "$pid"
mv "$BED_TMP/mlinkd-$k.log" "$BED_TMP/mlinkd-$k-killed.log"
filters() { bed_exec "$k" tc filter show dev eth1 ingress | grep -c 'bpf' || true; }
echo "  after the kill: $k's ml0 $(bed_exec "$k" ip -br link show ml0 2>/dev/null | awk '{print $2}' || echo absent)," \
  "pins $(ls "/sys/fs/bpf/mlink/$(ml_node_id "$k")" 2>/dev/null | wc -l)," \
  "bpf filter lines on $k's eth1 ingress $(filters)"
fo_at "$(awk -v d="${FO_RESTART_DELAY:-2}" 'BEGIN { print 3 + d }')"
# Same command line as ml_start, but a failure to come up is an assertion, not the end.
bed_bg "$k" "mlinkd-$k.log" "$MLINKD" --config "$BED_TMP/$k.toml"
printf -v "$pidvar" '%s' "$BED_LAST_PID"
pid=$BED_LAST_PID
fo_mark repair "$k's mlinkd restarted (pid $pid)"
sleep 1
if ! kill -0 "$pid" 2>/dev/null; then
  rc=0; wait "$pid" || rc=$?
  bed__forget_pid "$pid"
  fo_fail "the restarted mlinkd exited $rc within 1 s: $(tail -n 3 "$BED_TMP/mlinkd-$k.log" | tr '\n' ' ')"
fi
for dev in eth0 eth1 eth2; do fo_check_carries "$dev" 5; done
echo "  after the restart: bpf filter lines on b's eth1 ingress $(filters)"
fo_wait_iperf
n=$(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(len(r["end"]["streams"]))' "$FO_JSON" 2>/dev/null || echo 0)
echo "  streams at the end: $n"
[ "$n" = 8 ] || fo_fail "iperf3 ended with $n of 8 streams"
fo_finish eth1 "agent SIGKILL and restart" --no-down
