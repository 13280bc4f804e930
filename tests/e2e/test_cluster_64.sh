#!/usr/bin/env bash
# Cluster scale (issue 11): CLUSTER_HOSTS (default 64) real mlinkd hosts on two shared L2
# segments (two bridges in a "switch" netns), each host with eth0 on segment 0 and eth1 on
# segment 1, discovery with keys, no [[peer]]. Every host must see every other host over both
# links, all up; then a silent one-way drop on one host's eth1 (its ingress, carrier up) must
# take eth1 out of that host's entry on every one of its peers, and out of every entry of its
# own, while every other (entry, link) stays up; after the repair all must come back.
# Prints the start-up, convergence, detection and repair times and the agents' CPU and RSS.
#
# Knobs: CLUSTER_HOSTS (2..1000), CLUSTER_VICTIM (host number of the failing host, default 7),
# CLUSTER_BFD_MS (BFD interval, default below), CLUSTER_START_BATCH (agents started at once),
# CLUSTER_TIMEOUT_S (bound on convergence, default 120), CLUSTER_V6=1 (IPv6 as well).
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"

H=${CLUSTER_HOSTS:-64}
VICTIM=${CLUSTER_VICTIM:-7}
# BFD: 300 ms x 3, echo on (the default; rx_mode stays "redirect", which reflects echoes in
# the datapath). Every (peer, link) is a session: 2 (H-1) per agent, 8064 at 64 hosts. With
# echo a session sends an echo per interval, reflected by the peer's datapath (its agent never
# sees it), and once Up a control packet a second. Why 300: below it the detection time is
# shorter than how long an agent waits for a core when 64 of them share 2 cores with other
# work. Measured (2 cores, load 15-20 from others): 16 hosts at 30 ms never converged in
# 120 s (sessions Up -> Down by control_detect_expired, 90 ms, over and over, each failure
# doubling the hold-down to 3 s); at 100 ms they took 35 s; at 300 ms 2.4 s. 300 ms still
# detects in 0.9 s (the test sees every peer's entry lose the link 1.3-1.5 s after the
# fault, poll rounds included). Agents' own CPU, converged, over 10 s:
#   12 hosts, 300 ms: 1.5 % of a core per agent;  16 hosts: 2.1 % at 100 ms, 2.1 % at 300 ms,
#   2.0 % at 1000 ms.
# So beyond ~300 ms the interval buys nothing: an agent's load grows with its peers (~0.09 %
# of a core per peer here), not with BFD packets. A longer interval only slows detection.
BFD_MS=${CLUSTER_BFD_MS:-300}
# Start-up: an agent loads (verifies) and attaches its BPF programs (0.1 s alone). 64 started
# at once took 5.6 s until the last had its datapath (one waited 4.2 s); in batches of 8, 5.3 s
# (none waited more than 0.7 s; 9.3 s when the machine was busier). Batches keep each agent's
# start short at no cost in total.
START_BATCH=${CLUSTER_START_BATCH:-8}
TIMEOUT_S=${CLUSTER_TIMEOUT_S:-120}
# IPv6 too (links fd00:0:0:<i>::<N>/64, ML fd88::<N>/64, and its entries checked): off by
# default, it doubles the neighbour entries and adds neighbour discovery to the load.
V6=${CLUSTER_V6:-0}
export BED_SEGMENT_V6=$V6
if ! [[ $H =~ ^[0-9]+$ ]] || ((H < 2 || H > 1000)); then
  bed_die "CLUSTER_HOSTS must be 2..1000, got '$H'"
fi
if ! [[ $VICTIM =~ ^[0-9]+$ ]] || ((VICTIM < 1 || VICTIM > H)); then
  bed_die "CLUSTER_VICTIM must be 1..$H, got '$VICTIM'"
fi
bed_require_root
[[ -x $MLINKD && -x $MLINKCTL && -x $ML_BUILD/tests/ml-fault ]] ||
  bed_die "needs mlinkd, mlinkctl and tests/ml-fault in $ML_BUILD"
bed_init

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

HOSTS=()
for ((n = 1; n <= H; n++)); do HOSTS+=("h$n"); done

echo "== $H hosts on two segments"
t_setup=$(now_ms)
# Each host has H-1 neighbours on each of its two links (managed entries for the next hops,
# and the kernel's for the ARP it answers); the kernel's neighbour table is global and holds
# 1024 by default, full at about 23 such hosts.
bed_neigh_room $((4 * H * (H - 1)))
bed_host sw 0
bed_segment sw 0
bed_segment sw 1
for h in "${HOSTS[@]}"; do bed_host "$h" "${h#h}"; done
bed_ports sw 0 0 "${HOSTS[@]}"
bed_ports sw 1 1 "${HOSTS[@]}"
echo "  namespaces, bridges and $((2 * H)) veth pairs in $(secs $(($(now_ms) - t_setup))) s"

# cluster_config HOST: HOST's config, as ml_config_mesh writes it (discovery with keys, no
# [[peer]], links eth0 and eth1) plus the BFD interval (ml_config_mesh's extra TOML comes
# after its [bfd], which cannot be opened twice); ML address 10.88.<N/256>.<N%256>, with
# CLUSTER_V6=1 also fd88::<N in hex>.
cluster_config() {
  local h=$1 n=${BED_HOSTNUM[$1]} f="$BED_TMP/$1.toml" six=""
  ((V6 == 0)) || six=$(printf ', "fd88::%x/64"' "$n")
  ml_keys
  cat >"$f" <<EOF2 || bed_die "write $f"
[node]
id = "$(ml_node_id "$h")"
ml_address = ["10.88.$((n / 256)).$((n % 256))/16"$six]
[[link]]
device = "eth0"
[[link]]
device = "eth1"
[bfd]
key_file = "$ML_BFD_KEY"
interval_ms = $BFD_MS
[discovery]
key_file = "$ML_TOPO_KEY"
EOF2
}
for h in "${HOSTS[@]}"; do cluster_config "$h"; done

declare -A ID=()
for h in "${HOSTS[@]}"; do ID[$h]=$(ml_node_id "$h"); done

# The verdict on one round of `show maps` from every host (check.py DIR H MODE VICTIM V6):
#   up     every host has an IPv4 entry (and with V6 an IPv6 one) for each of the other H-1
#          hosts with eth0 and eth1, both up
#   fault  as up, except that eth1 is not up (down or gone) in every other host's entry for
#          the victim and in every entry of the victim's own
# exit 0: holds, 1: not yet, 2: broken (fault: a link other than the victim's eth1 not up, or
# an entry gone). One line on stdout says how far it is.
cat >"$BED_TMP/check.py" <<'PY'
import json, os, sys
d, hosts, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
victim, v6 = int(sys.argv[4]), sys.argv[5] == "1"
ml4 = lambda n: "10.88.%d.%d" % (n // 256, n % 256)
ml6 = lambda n: "fd88::%x" % n
want = {"eth0", "eth1"}
done, broken, worst = 0, [], (0, "")
for n in range(1, hosts + 1):
    try:
        with open(os.path.join(d, "%d.json" % n)) as f:
            entries = {e["ml_address"]: e for e in json.load(f)}
    except (OSError, ValueError):
        entries = {}
    missing = []
    for p in range(1, hosts + 1):
        if p == n:
            continue
        # the links up in both entries of the peer (its IPv4 one only, without v6)
        up = None
        for e in [entries.get(ml4(p))] + ([entries.get(ml6(p))] if v6 else []):
            got = {l["link"] for l in e["links"] if l["state"] == "up"} if e else set()
            up = got if up is None else up & got
        if mode == "fault" and victim in (n, p):
            ok = up == {"eth0"}
            bad = "eth0" not in up  # eth1 on its way out is fine, eth0 never goes
        else:
            ok = up == want
            bad = not ok
        if not ok:
            missing.append("h%d:%s" % (p, ",".join(sorted(up)) or "-"))
        if mode == "fault" and bad:
            broken.append("h%d sees h%d with %s up" % (n, p, ",".join(sorted(up)) or "nothing"))
    if not missing:
        done += 1
    elif len(missing) > worst[0] or not worst[1]:
        worst = (len(missing), "e.g. h%d: %d peers not as wanted (peer:links up) %s" %
                 (n, len(missing), " ".join(missing[:6])))
print("%d/%d hosts as wanted%s" % (done, hosts, "; " + worst[1] if done < hosts else ""))
if broken:
    print("BROKEN: " + "; ".join(broken[:10]) + (" ..." if len(broken) > 10 else ""))
    sys.exit(2)
sys.exit(0 if done == hosts else 1)
PY

# agents_alive: every agent still runs (a dead one fails the test with its log).
agents_alive() {
  local h var
  for h in "${HOSTS[@]}"; do
    var=ML_PID_$h
    [[ -z ${!var:-} ]] && continue
    kill -0 "${!var}" 2>/dev/null && continue
    tail -n 30 "$BED_TMP/mlinkd-$h.log" >&2
    bed_die "mlinkd on $h is gone"
  done
}

# snapshot DIR: every host's `show maps` into DIR/<hostnum>.json (empty when it fails: an
# agent whose pins are not there yet).
snapshot() {
  local dir=$1 h
  mkdir -p "$dir"
  for h in "${HOSTS[@]}"; do
    bed_exec "$h" "$MLINKCTL" -n "${ID[$h]}" -j show maps >"$dir/${BED_HOSTNUM[$h]}.json" 2>/dev/null ||
      : >"$dir/${BED_HOSTNUM[$h]}.json"
  done
}

# wait_for MODE LIMIT_S: poll (a round of $H mlinkctl, then at most one more a second) until
# check.py MODE holds; dies when LIMIT_S pass first or it reports broken. Sets DONE_MS (the
# end of the round that saw it: an upper bound), ROUNDS and PHASE_CPU (the agents' load
# meanwhile).
wait_for() {
  local mode=$1 limit_ms=$(($2 * 1000)) t0 start rc out ticks
  t0=$(now_ms)
  ticks=$(cpu_ticks)
  ROUNDS=0
  while :; do
    start=$(now_ms)
    agents_alive
    snapshot "$BED_TMP/maps"
    ROUNDS=$((ROUNDS + 1))
    rc=0
    out=$(python3 "$BED_TMP/check.py" "$BED_TMP/maps" "$H" "$mode" "$VICTIM" "$V6") || rc=$?
    DONE_MS=$(now_ms)
    if ((rc == 0)); then
      PHASE_CPU=$(cpu_since "$ticks" "$t0")
      return 0
    fi
    if ((rc != 1)); then
      echo "$out" >&2
      bed_die "$mode: not as it must be (check.py exit $rc)"
    fi
    if ((DONE_MS - t0 > limit_ms)); then
      echo "$out" >&2
      echo "  agents' CPU meanwhile: $(cpu_since "$ticks" "$t0")" >&2
      bed_die "$mode: not reached within $2 s ($ROUNDS rounds)"
    fi
    ((ROUNDS % 10 == 0)) && echo "  ... $((DONE_MS - t0)) ms: $out"
    local rest=$((1000 - (DONE_MS - start)))
    ((rest <= 0)) || sleep "$(secs "$rest")"
  done
}

# cpu_ticks: user+system clock ticks of all agents so far.
cpu_ticks() {
  local h var sum=0 t
  for h in "${HOSTS[@]}"; do
    var=ML_PID_$h
    t=$(awk '{print $14 + $15}' "/proc/${!var}/stat") || bed_die "no /proc/${!var}/stat ($h)"
    sum=$((sum + t))
  done
  echo "$sum"
}

# cpu_since TICKS T_MS: "X % of one core for all, Y % each" since cpu_ticks said TICKS at T_MS.
cpu_since() {
  local ticks dt pct
  ticks=$(cpu_ticks)
  dt=$(($(now_ms) - $2))
  ((dt > 0)) || dt=1
  pct=$(((ticks - $1) * 1000 * 1000 / CLK_TCK / dt))  # tenths of a percent of one core
  printf '%d.%d %% of one core for all %d agents (%d.%d %% each)' $((pct / 10)) $((pct % 10)) \
    "$H" $((pct / H / 10)) $((pct / H % 10))
}
CLK_TCK=$(getconf CLK_TCK)

# rss_kb: the agents' resident memory, summed, and the largest.
rss_kb() {
  local h var
  for h in "${HOSTS[@]}"; do
    var=ML_PID_$h
    awk '/^VmRSS:/ {print $2}' "/proc/${!var}/status" || bed_die "no /proc/${!var}/status ($h)"
  done | awk '{s += $1; if ($1 > m) m = $1} END {print s, m}'
}

echo "== $H agents, BFD ${BFD_MS} ms x 3 with echo, $START_BATCH started at a time"
# Each agent loads and attaches its BPF programs and pins its maps; `show maps` answering is
# the sign it has. A batch starts once the previous one is that far.
t_first=$(now_ms)
declare -A T_START=()
slowest=0
for ((i = 0; i < H; i += START_BATCH)); do
  batch=("${HOSTS[@]:i:START_BATCH}")
  for h in "${batch[@]}"; do
    T_START[$h]=$(now_ms)
    bed_bg "$h" "mlinkd-$h.log" "$MLINKD" --config "$BED_TMP/$h.toml"
    printf -v "ML_PID_$h" '%s' "$BED_LAST_PID"
  done
  for h in "${batch[@]}"; do
    until bed_exec "$h" "$MLINKCTL" -n "${ID[$h]}" -j show maps >/dev/null 2>&1; do
      agents_alive
      (($(now_ms) - T_START[$h] < 30000)) || bed_die "mlinkd on $h: no datapath after 30 s"
      sleep 0.05
    done
    ready=$(($(now_ms) - T_START[$h]))
    ((ready <= slowest)) || slowest=$ready
  done
done
t_last=${T_START[${HOSTS[H - 1]}]}
t_ready=$(now_ms)
echo "  started in $(secs $((t_ready - t_first))) s (last start $(secs $((t_last - t_first))) s" \
  "after the first; slowest start to datapath up $(secs "$slowest") s)"

# last_change FROM_MS TO_MS REGEX: the epoch ms of the last line matching REGEX logged by any
# agent between FROM_MS and TO_MS. A round of $H `show maps` takes seconds at 64 hosts, so the
# poll only confirms a state; when it was reached comes from the agents' own (ms) log stamps:
# an entry changes only with a "link/state/buckets" line, so the last one is the moment.
last_change() {
  python3 - "$BED_TMP" "$1" "$2" "$3" <<'PY' || bed_die "read the agents' logs"
import datetime, glob, re, sys
tmp, lo, hi, rx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), re.compile(sys.argv[4])
day = datetime.datetime.fromtimestamp(lo / 1000).date()
last = None
for path in glob.glob(tmp + "/mlinkd-h*.log"):
    for line in open(path, errors="replace"):
        if not rx.search(line):
            continue
        t = datetime.datetime.combine(day, datetime.time.fromisoformat(line.split()[0]))
        ms = int(t.timestamp() * 1000)
        if lo <= ms <= hi and (last is None or ms > last):
            last = ms
print(last if last is not None else lo)
PY
}

echo "== every host sees every other over eth0 and eth1, all up (at most ${TIMEOUT_S} s)"
wait_for up "$TIMEOUT_S"
t_conv=$(last_change "$t_first" "$DONE_MS" 'link/state/buckets')
echo "  converged $(secs $((t_conv - t_last))) s after the last agent started," \
  "$(secs $((t_conv - t_first))) s after the first (the agents' last entry change; confirmed" \
  "by $ROUNDS rounds of $H show maps); agents' CPU meanwhile $PHASE_CPU"

# The agents' load, converged and idle, over 10 s (figures at the BFD interval above).
ticks=$(cpu_ticks)
cpu_t0=$(now_ms)
sleep 10
read -r rss_sum rss_max <<<"$(rss_kb)"
echo "  agents' CPU converged: $(cpu_since "$ticks" "$cpu_t0")" \
  "(${BFD_MS} ms x $((2 * (H - 1))) sessions each), RSS $((rss_sum / 1024)) MiB in all," \
  "$((rss_max / 1024)) MiB at most"

victim=h$VICTIM
echo "== silent one-way drop into $victim's eth1 (its ingress, carrier up)"
t_fault=$(now_ms)
ml_fault "$victim" eth1 ingress 1000000
wait_for fault 30
t_seen=$(last_change "$t_fault" "$DONE_MS" 'link/state/buckets')
echo "  every peer's entry for $victim and every entry of $victim's without eth1, the rest up:" \
  "$(secs $((t_seen - t_fault))) s after the fault (the agents' last entry change; confirmed by" \
  "$ROUNDS rounds)"
echo "  dropped by the fault: $(ml_fault_dropped "$victim" eth1 ingress) packets"

echo "== repair"
t_repair=$(now_ms)
ml_fault "$victim" eth1 ingress 0
wait_for up 60
t_back=$(last_change "$t_repair" "$DONE_MS" 'link/state/buckets')
echo "  all up again: $(secs $((t_back - t_repair))) s after the repair (hold-down included;" \
  "confirmed by $ROUNDS rounds)"

echo "== stop"
# All at once (ml_stop one by one would wait for each agent's teardown in turn: 1.6 s each
# at 12 hosts), each checked as ml_stop does: exit 0 or its log and fail.
t_stop=$(now_ms)
for h in "${HOSTS[@]}"; do var=ML_PID_$h; kill -TERM "${!var}" || bed_die "kill mlinkd on $h"; done
for h in "${HOSTS[@]}"; do
  var=ML_PID_$h
  rc=0
  wait "${!var}" || rc=$?
  if ((rc != 0)); then
    tail -n 30 "$BED_TMP/mlinkd-$h.log" >&2
    bed_die "mlinkd on $h exited $rc"
  fi
done
echo "  $H agents stopped cleanly in $(secs $(($(now_ms) - t_stop))) s"
echo "PASS: $H hosts on two segments, discovery, BFD ${BFD_MS} ms; total $(secs $(($(now_ms) - t_setup))) s"
