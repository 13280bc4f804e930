#!/usr/bin/env bash
# One point of the scale benchmark (bench/scale.sh): one real mlinkd in netns "a" facing
# PEERS simulated mlink peers (bench/sim, mlink_sim) in netns "s", joined by SCALE_LINKS veth
# pairs eth0..; discovery with keys, BFD authenticated at SCALE_INTERVAL_MS × SCALE_MULT with
# echo. Prints one `bench_scale key=value ...` line:
#   converge_s        agent start -> every peer × link up in the datapath (show maps, polled)
#   cpu_pct, rss_mib, hwm_mib   agent CPU (% of one core, /proc/PID/stat over SCALE_STEADY_S s
#                     starting 2 s after convergence), VmRSS and VmHWM at its end;
#                     flaps_steady: BFD sessions the agent saw go down in that window (0
#                     expected); udp_rcvbuf_errors: the agent netns' UDP receive-queue drops;
#                     agent_runq_wait_pct: share of the window the agent's main thread was
#                     runnable but waiting for a CPU, load1: the load average (shared machine)
#   detect_ms         the simulator silences one peer on one link (its control packets, and a
#                     BPF drop of the agent's echoes to it) -> the agent's "BFD up -> down" log
#                     line for that (peer, link); others_down: other slots down after it
#   carrier_*         `ip link set eth0 down` on the agent's side: the agent's own figures (log
#                     "carrier loss ...: N peer entries rewritten in U us (C us of CPU)": wall
#                     time, and the agent thread's CPU time in it) and the time until
#                     no eth0 slot is up in the maps as polled (coarse: one mlinkctl run)
# Usage: sudo bench/scale_case.sh PEERS
# Env: SCALE_LINKS (4), SCALE_INTERVAL_MS (30), SCALE_MULT (3), SCALE_STEADY_S (10),
#   SCALE_CONVERGE_TIMEOUT_S (60 + PEERS/20), SCALE_PERF (0; 1: perf record -g the agent for
#   8 s after the CPU window, report in the log dir), SCALE_SIM_ARGS (extra mlink_sim flags),
#   SCALE_LOG_DIR (copy the agent's and simulator's logs there), MLINK_BUILD_DIR.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MLINK_BUILD_DIR=${MLINK_BUILD_DIR:-$BENCH_DIR/../build}
source "$BENCH_DIR/../tests/e2e/lib/bed.sh"
source "$BENCH_DIR/../tests/e2e/lib/mlink.sh"

N=${1:?usage: scale_case.sh PEERS}
L=${SCALE_LINKS:-4}
IV=${SCALE_INTERVAL_MS:-30}
MULT=${SCALE_MULT:-3}
STEADY=${SCALE_STEADY_S:-10}
CONV_TO=${SCALE_CONVERGE_TIMEOUT_S:-$((60 + N / 20))}
SIM=$ML_BUILD/bench/mlink_sim
REP=(python3 "$BENCH_DIR/scale_report.py")
((N >= 1 && N <= 62500 && L >= 1 && L <= 8)) || bed_die "PEERS 1..62500, SCALE_LINKS 1..8"

bed_require_root jq
[[ -x $SIM && -x $MLINKD && -x $MLINKCTL ]] ||
  bed_die "build mlink_sim, mlinkd and mlinkctl in $ML_BUILD first"
bed_init

now() { date +%s.%N; }
sub_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a - b) * 1000 }'; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
runq_ns() { awk '{ print $2 }' "/proc/$1/schedstat"; }  # main thread: runnable, not running
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
udp_stat() { # udp_stat HOST FIELD: a field of the Udp line of the host's /proc/net/snmp
  bed_exec "$1" cat /proc/net/snmp | awk -v f="$2" '
    $1 == "Udp:" && !h { for (i = 2; i <= NF; i++) col[$i] = i; h = 1; next }
    $1 == "Udp:" && h { print $(col[f]) }'
}
ml_of() { echo "10.88.$(($1 / 250)).$(($1 % 250 + 2))"; }
# bg_poll OUT CMD...: run a scale_report.py poller in the background (PID in POLLER), return
# once it has polled once, so a fault injected next is seen by it.
bg_poll() {
  local out=$1 ready i
  shift
  ready=$(mktemp -u "$BED_TMP/ready.XXXX")
  "${REP[@]}" "$@" --ready "$ready" >"$out" &
  POLLER=$!
  BED_PIDS+=("$POLLER")
  for ((i = 0; i < 100; i++)); do [[ -e $ready ]] && return 0; sleep 0.05; done
  bed_die "poller did not start: $*"
}
# bg_wait: wait for the poller; its output, or fails.
bg_wait() {
  local rc=0
  wait "$POLLER" || rc=$?
  bed__forget_pid "$POLLER"
  return "$rc"
}

# ---- bed: agent a (10.i.0.1/16 on eth i), simulator s (every peer's address on eth i) -------
bed_host a 1
bed_host s 2
bed_sysctl s net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
# The agent keeps a managed neighbour per (peer, link); neighbour tables are global and
# counted against the root netns' thresholds (bed_neigh_room).
bed_neigh_room $((N * L + 256))
t_bed=$(now)
for ((i = 0; i < L; i++)); do
  ip link add "eth$i" netns "$(bed_ns a)" type veth peer name "eth$i" netns "$(bed_ns s)"
  bed_exec a ip addr add "10.$i.0.1/16" dev "eth$i"
  bed_exec a ip link set "eth$i" up
done
for ((i = 0; i < L; i++)); do
  for ((k = 0; k < N; k++)); do
    printf 'addr add 10.%d.%d.%d/16 dev eth%d\n' "$i" $((k / 250)) $((k % 250 + 2)) "$i"
  done
  printf 'link set eth%d up\n' "$i"
done | bed_exec s ip -batch - || bed_die "simulated addresses"
bed_log "bed: $L links, $((N * L)) simulated addresses in $(sub_ms "$(now)" "$t_bed") ms"

ml_keys
ID=$(ml_node_id a)
CFG=$BED_TMP/a.toml
{
  printf '[node]\nid = "%s"\nml_address = ["10.88.0.1/16"]\nrx_mode = "redirect"\n' "$ID"
  for ((i = 0; i < L; i++)); do printf '[[link]]\ndevice = "eth%d"\n' "$i"; done
  printf '[bfd]\ninterval_ms = %d\nmultiplier = %d\nkey_file = "%s"\n' "$IV" "$MULT" "$ML_BFD_KEY"
  printf '[discovery]\nkey_file = "%s"\n' "$ML_TOPO_KEY"
  printf '[metrics]\nlisten = "127.0.0.1:9464"\n'
} >"$CFG"
PINS=/sys/fs/bpf/mlink/$ID
# A killed agent leaves its pins in the (global) bpffs: ours go at cleanup, whatever happens.
bed_on_cleanup "rm -rf '$PINS'"

save_logs() {
  [[ -n ${SCALE_LOG_DIR:-} ]] || return 0
  mkdir -p "$SCALE_LOG_DIR"
  cp "$BED_TMP/mlinkd-a.log" "$SCALE_LOG_DIR/mlinkd-$N.log" 2>/dev/null || true
  cp "$BED_TMP/sim.log" "$SCALE_LOG_DIR/sim-$N.log" 2>/dev/null || true
  cp "$BED_TMP/perf.txt" "$SCALE_LOG_DIR/perf-$N.txt" 2>/dev/null || true
}
bed_on_cleanup save_logs

# ---- the simulator, then the agent ------------------------------------------------------------
CTL=$BED_TMP/sim.ctl
# shellcheck disable=SC2086
bed_bg s sim.log "$SIM" -n "$N" -l "$L" --topo-key "$ML_TOPO_KEY" --bfd-key "$ML_BFD_KEY" \
  --interval-ms "$IV" --multiplier "$MULT" --echo-rx-ms "$IV" --control "$CTL" ${SCALE_SIM_ARGS:-}
SIM_PID=$BED_LAST_PID
"${REP[@]}" wait-log --file "$BED_TMP/sim.log" --regex '^[0-9]+ sim ready' --timeout 20 >/dev/null ||
  { cat "$BED_TMP/sim.log" >&2; bed_die "simulator did not start"; }

t_start=$(now)
bed_bg a mlinkd-a.log "$MLINKD" --config "$CFG"
AGENT_PID=$BED_LAST_PID
MAPS=(--ns "$(bed_ns a)" --ctl "$MLINKCTL" --node "$ID")

converged=1
conv=$("${REP[@]}" wait-up "${MAPS[@]}" --peers "$N" --links "$L" --since "$t_start" \
  --timeout "$CONV_TO" --interval 0.2 --verbose) || { converged=0; conv="timeout>${CONV_TO}"; }
kill -0 "$AGENT_PID" 2>/dev/null || { tail -30 "$BED_TMP/mlinkd-a.log" >&2; bed_die "mlinkd died"; }
bed_log "converged: $conv s"
# Without reflected echoes every session runs on 30 ms control packets: other figures, not these.
if grep -q 'reflects none' "$BED_TMP/mlinkd-a.log"; then
  bed_die "the simulator reflects no echoes: $(grep -m1 'reflects none' "$BED_TMP/mlinkd-a.log")"
fi
# Steady state: after 2 s, CPU over STEADY s (nothing else of ours runs meanwhile).
sleep 2
hz=$(getconf CLK_TCK)
downs() { grep -c 'BFD up -> down' "$BED_TMP/mlinkd-a.log" || true; }
f0=$(downs)
c0=$(ticks "$AGENT_PID"); s0=$(ticks "$SIM_PID"); q0=$(runq_ns "$AGENT_PID"); w0=$(now)
sleep "$STEADY"
c1=$(ticks "$AGENT_PID"); s1=$(ticks "$SIM_PID"); q1=$(runq_ns "$AGENT_PID"); w1=$(now)
load1=$(cut -d' ' -f1 /proc/loadavg)  # the machine is shared: how busy it was
runq=$(awk -v d=$((q1 - q0)) -v t0="$w0" -v t1="$w1" 'BEGIN { printf "%.1f", d / 1e9 / (t1 - t0) * 100 }')
flaps=$(($(downs) - f0))  # sessions that went down in the window: should be 0
cpu=$(awk -v d=$((c1 - c0)) -v hz="$hz" -v t0="$w0" -v t1="$w1" 'BEGIN { printf "%.1f", d / hz / (t1 - t0) * 100 }')
sim_cpu=$(awk -v d=$((s1 - s0)) -v hz="$hz" -v t0="$w0" -v t1="$w1" 'BEGIN { printf "%.1f", d / hz / (t1 - t0) * 100 }')
rss=$(awk -v k="$(status_kib "$AGENT_PID" VmRSS)" 'BEGIN { printf "%.1f", k / 1024 }')
hwm=$(awk -v k="$(status_kib "$AGENT_PID" VmHWM)" 'BEGIN { printf "%.1f", k / 1024 }')
rcvbuf=$(udp_stat a RcvbufErrors)
sim_rcvbuf=$(udp_stat s RcvbufErrors)  # must stay 0, or the simulator is what dropped
# Which of the agent's sockets dropped (local port: drops), e.g. 28012 topology, 3784 BFD.
udp_drops=$(bed_exec a cat /proc/net/udp | python3 -c '
import sys
d = ["%d:%s" % (int(f[1].split(chr(58))[1], 16), f[-1]) for f in (l.split() for l in list(sys.stdin)[1:]) if int(f[-1])]
print(",".join(d))')
bed_log "steady: agent ${cpu} % of a core, RSS ${rss} MiB (peak ${hwm}), sim ${sim_cpu} %; agent waited for a CPU ${runq} % of the time (load ${load1}); agent netns UDP RcvbufErrors ${rcvbuf}; ${flaps} BFD downs in the window; drops by port: ${udp_drops:-none}; simulator netns RcvbufErrors ${sim_rcvbuf}"
echo "sim: $(grep ' sim stats ' "$BED_TMP/sim.log" | tail -1)" >&2

if [[ ${SCALE_PERF:-0} == 1 ]] && command -v perf >/dev/null; then
  # DWARF call graphs (the build has no frame pointers): self time and time including callees.
  perf record -q -F 199 --call-graph dwarf,16384 -p "$AGENT_PID" -o "$BED_TMP/perf.data" \
    -- sleep 6 >/dev/null 2>&1 || true
  for mode in --no-children --children; do
    echo "== perf report $mode (agent, 6 s of steady state)"
    nice perf report -i "$BED_TMP/perf.data" --stdio $mode --sort sym -g none --percent-limit 0.5 \
      2>/dev/null | grep "%" | cut -c1-200 | head -90
  done >"$BED_TMP/perf.txt" || true
  rm -f "$BED_TMP/perf.data"
  bed_log "perf: agent's top symbols (self, then with callees):"
  sed 's/^/    /' "$BED_TMP/perf.txt" >&2
fi

detect=- detect_maps=- others_down=- repair=- c_entries=- c_agent=- c_cpu=- c_poll=- c_metric=-
if ((converged)); then
  # ---- one-way failure toward one simulated peer on one link -----------------------------------
  K=$((N / 2)); FL=$((L > 1 ? 1 : 0)); PEER_ML=$(ml_of "$K")
  skip=$(wc -l <"$BED_TMP/mlinkd-a.log")
  sskip=$(wc -l <"$BED_TMP/sim.log")
  bg_poll "$BED_TMP/slot.out" wait-slot "${MAPS[@]}" --peer "$PEER_ML" --link "eth$FL" \
    --state down --interval 0.01 --timeout 15
  echo "silence $K $FL" >"$CTL"
  fault=$("${REP[@]}" wait-log --file "$BED_TMP/sim.log" --skip "$sskip" \
    --regex ' sim fault silence ' --timeout 10) || bed_die "the simulator did not inject the fault"
  t0_us=$(sed -n 's/.* t0_us=\([0-9]*\).*/\1/p' <<<"$fault")
  bed_log "fault: ${fault#* }"
  if line=$("${REP[@]}" wait-log --file "$BED_TMP/mlinkd-a.log" --skip "$skip" --ref-us "$t0_us" \
    --regex "peer $PEER_ML link eth$FL: BFD up -> down" --timeout 10); then
    detect=$(awk -v a="${line%% *}" -v b="$t0_us" 'BEGIN { printf "%.0f", (a - b) / 1000 }')
    bed_log "agent: ${line#* }"
  fi
  if bg_wait; then
    t=$(<"$BED_TMP/slot.out")
    detect_maps=$(awk -v a="$t" -v b="$t0_us" 'BEGIN { printf "%.0f", a * 1000 - b / 1000 }')
    read -r up _ _ < <("${REP[@]}" count-up "${MAPS[@]}")
    others_down=$((N * L - 1 - up))
  fi
  echo "restore $K $FL" >"$CTL"
  t_r=$(now)
  if r=$("${REP[@]}" wait-up "${MAPS[@]}" --peers "$N" --links "$L" --since "$t_r" --timeout 30); then
    repair=$r
  fi
  # ---- carrier loss of eth0 on the agent's side ------------------------------------------------
  skip=$(wc -l <"$BED_TMP/mlinkd-a.log")
  bg_poll "$BED_TMP/link.out" wait-link "${MAPS[@]}" --link eth0 --interval 0.01 --timeout 20
  if [[ ${SCALE_PERF:-0} == 1 ]] && command -v perf >/dev/null; then
    # A profile of the rewrite itself: 1 s around it at 20 kHz (it takes ~10 ms).
    perf record -q -F 20000 --call-graph dwarf,16384 -p "$AGENT_PID" -o "$BED_TMP/perf-carrier.data" \
      -- sleep 1 >/dev/null 2>&1 &
    perf_c=$!
    sleep 0.2
  fi
  t_c=$(now)
  bed_exec a ip link set eth0 down
  if [[ -n ${perf_c:-} ]]; then
    wait "$perf_c" || true
    nice perf report -i "$BED_TMP/perf-carrier.data" --stdio --children --sort sym -g none \
      --percent-limit 0.5 2>/dev/null | grep '%' | cut -c1-200 | head -60 >"$BED_TMP/perf-carrier.txt" || true
    if [[ -n ${SCALE_LOG_DIR:-} ]]; then mv "$BED_TMP/perf-carrier.data" "$SCALE_LOG_DIR/perf-carrier-$N.data"; fi
    bed_log "perf: the second around the carrier loss (with callees):"
    sed 's/^/    /' "$BED_TMP/perf-carrier.txt" >&2
  fi
  if bg_wait; then
    c_poll=$(sub_ms "$(<"$BED_TMP/link.out")" "$t_c")
  fi
  if line=$("${REP[@]}" wait-log --file "$BED_TMP/mlinkd-a.log" --skip "$skip" \
    --regex 'carrier loss[^:]*: [0-9]+ peer entries rewritten in [0-9]+ us' --timeout 10); then
    c_entries=$(sed -n 's/.*: \([0-9]*\) peer entries rewritten in \([0-9]*\) us.*/\1/p' <<<"$line")
    us=$(sed -n 's/.*: \([0-9]*\) peer entries rewritten in \([0-9]*\) us.*/\2/p' <<<"$line")
    cpu_us=$(sed -n 's/.* (\([0-9]*\) us of CPU).*/\1/p' <<<"$line")
    c_agent=$(awk -v u="$us" 'BEGIN { printf "%.2f", u / 1000 }')
    [[ -z $cpu_us ]] || c_cpu=$(awk -v u="$cpu_us" 'BEGIN { printf "%.2f", u / 1000 }')
    bed_log "agent: ${line#* }"
  fi
  m=$(bed_exec a curl -s --max-time 5 http://127.0.0.1:9464/metrics 2>/dev/null |
    awk '$1 ~ /^mlink_carrier_loss_rewrite_seconds/ && $1 !~ /_bucket/ { print $1 "=" $2 }' | tr '\n' ',' || true)
  [[ -n $m ]] && c_metric=${m%,}
fi

# ---- stop the agent (time its teardown) ------------------------------------------------------------
t_s=$(now)
kill -TERM "$AGENT_PID"
for ((i = 0; i < 600; i++)); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$AGENT_PID" 2>/dev/null && { bed_log "mlinkd still running 60 s after SIGTERM: KILL"; kill -KILL "$AGENT_PID"; }
wait "$AGENT_PID" 2>/dev/null || true
bed__forget_pid "$AGENT_PID"
stop=$(awk -v a="$(now)" -v b="$t_s" 'BEGIN { printf "%.2f", a - b }')

rev=$(git -C "$BENCH_DIR/.." rev-parse --short HEAD 2>/dev/null || echo "?")
git -C "$BENCH_DIR/.." diff --quiet HEAD -- control bpf 2>/dev/null || rev="$rev+dirty"
echo "bench_scale peers=$N links=$L interval_ms=$IV multiplier=$MULT sessions=$((N * L))" \
  "converge_s=$conv cpu_pct=$cpu rss_mib=$rss hwm_mib=$hwm sim_cpu_pct=$sim_cpu" \
  "detect_ms=$detect detect_maps_ms=$detect_maps others_down=$others_down repair_s=$repair" \
  "carrier_entries=$c_entries carrier_agent_ms=$c_agent carrier_cpu_ms=$c_cpu carrier_poll_ms=$c_poll" \
  "carrier_metric=$c_metric udp_rcvbuf_errors=$rcvbuf udp_drops_by_port=${udp_drops:--} sim_udp_rcvbuf_errors=$sim_rcvbuf flaps_steady=$flaps agent_runq_wait_pct=$runq load1=$load1 stop_s=$stop agent=$rev"
((converged)) || exit 1
