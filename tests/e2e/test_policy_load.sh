#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Run-time policy under load (issue 5, acceptance 3): two hosts by discovery, 3 UNSHAPED veth
# links (no tbf: a congested shaper drops packets of its own, and with equal shaped links the
# byte split would follow the link rates, not the buckets), real TCP a -> b (iperf3).
#
#  1. drain under iperf3 -P8 (weights 1:1:1): three windows of 2 s, baseline [2,4] s,
#     `link set eth1 drain` on a at 4 s, `undrain` at 6 s. Asserted: eth1 has 0 buckets in
#     both maps and its BFD session is Up on both ends 1 s after the drain, and it carries no
#     datapath packet from then to the undrain; it carries again after the undrain; the link
#     drop counters (ip -s link: rx/tx dropped and errors of every device of both hosts), the
#     qdisc drop counters (tc -s qdisc: every qdisc of both hosts, the clsact of the BPF
#     programs included) and the datapath's drop counters (mlinkctl show drops) do not move
#     over the drain window nor over the undrain window; no stream stays under 1 Mbit/s for
#     more than 1 s (receiver's 0.2 s intervals, as the failover tests). Measured and printed
#     per window, baseline included, not asserted: the sender's retransmitted segments by
#     cause (fast retransmits: on duplicate or SACKed ACKs, which with no packet dropped
#     means reordering; tail-loss probes; RTOs), those the receiver reported as duplicates
#     (DSACK: spurious), the sender's reordering detections and the receiver's out-of-order
#     segments (/proc/net/{snmp,netstat} of each netns), and iperf3's retransmits.
#  2. weights 3:1 with eth2 as backup: `link set eth0 weight 3` on both ends and `link set
#     eth2 backup on` on a give 192/64/0 buckets (exactly, up to one bucket) in both maps and
#     both entries (IPv4, IPv6); under iperf3 -P16 (-b 100M per stream, see RATE) the
#     datapath's per-link byte counters of a put 75 % of the bytes on eth0, "±10 %" read as
#     within 10 percentage points (65..85 %; the rebalancer keeps the busy buckets at 12 ± 1
#     of 16 on eth0, i.e. 69..81 %; hashing alone would miss the range in ~40 % of runs),
#     and the backup eth2 carries nothing on either end: no datapath packet, and through the
#     device no more than the control traffic (BFD, discovery: not in the datapath's counters).
#  3. backup under iperf3 -P8: eth0 down on a at 2.5 s: eth1 has every bucket, eth2 still
#     carries nothing (eth1 is a usable primary); eth1 down too at 4.5 s: eth2 has every
#     bucket on both ends and carries the traffic both ways (>= 90 % of each host's IP output
#     bytes leave by eth2), iperf3 completes, ping works.
#
# Receive packet steering on every device of both hosts (rps_cpus: all CPUs): a veth hands
# each packet to the backlog of the CPU that sends it, and TCP sends from two CPUs (the
# process, and the softirq of an incoming ACK), so the bare veth bed, without mlink, delivers
# out of order: 500 to 4000 spurious (DSACKed) retransmits per second under iperf3 -P8 on
# 2 cores, iperf3 pinned or not, over ml0 or straight over a veth. Steered by flow hash, a
# flow's packets keep one backlog and the bed delivers in order (no retransmit at all in
# the runs measured, with or without mlink), so what the windows show is mlink's own doing.
#
# The datapath counts per slot index (what `show maps` prints), and discovery drops a down
# link from the peer ~3.4 s later, which renumbers the slots: from then on a slot's counter
# holds more than one link's history (show peers and /metrics settle that per link: agent
# LinkCounters; the raw maps cannot). Datapath counter windows here end before any such
# removal (a window across one reads "?" and fails); after it, device counters count.
set -euo pipefail
# shellcheck source=lib/bed.sh
source "$(dirname "$0")/lib/bed.sh"
# shellcheck source=lib/mlink.sh
source "$(dirname "$0")/lib/mlink.sh"
# shellcheck disable=SC2119 # no tools beyond bed.sh's own
bed_require_root
bed_init

PORT=5201
IVL=0.2 # iperf3 interval reports, client and server (s)
# Per-stream rate of the weights run, far below what the bed carries (10+ Gbit/s on 2 cores):
# every stream gets it, so the byte split is the datapath's placement of the streams, not
# how the CPUs happened to serve them (unlimited, a run with 12 of 16 streams on eth0 put
# 68.7 % of the bytes there).
RATE=100M
declare -a FAILED=()
fail() { echo "  ASSERTION FAILED: $*" >&2; FAILED+=("$*"); }
ctl() { local h=$1; shift; bed_exec "$h" "$MLINKCTL" -n "$(ml_node_id "$h")" "$@"; }
now_ms() { date +%s%3N; }
# tod_ms: local time of day in ms, as the agents' log lines have it.
tod_ms() { local h m s ms; read -r h m s ms < <(date '+%H %M %S %3N'); echo $((((10#$h * 60 + 10#$m) * 60 + 10#$s) * 1000 + 10#$ms)); }
T0=
# at SECS: sleep until SECS after the current iperf3 start.
at() { sleep "$(awk -v s="$1" -v n="$(now_ms)" -v t="$T0" 'BEGIN { d = s - (n - t) / 1000; printf "%.3f", (d > 0 ? d : 0) }')"; }
t_now() { awk -v n="$(now_ms)" -v t="$T0" 'BEGIN { printf "%.2f", (n - t) / 1000 }'; }

# The counters, parsed in one place. Subcommands:
#   snap HOST RAW...       "HOST kind ... value" lines from raw() outputs
#   delta S0 S1 REGEX      "key+d, ..." for every key matching REGEX that changed from S0 to S1
#   get S0 S1 KEY          the change of one key ("?" when S0 or S1 lacks it, or for a
#                          datapath counter, when the host's links changed slots between)
#   val S KEY              one value ("?" when absent)
#   buckets                (show maps on stdin) "eth0=N,..." of the IPv4 entry, then IPv6
#   near WANT GOT          true when GOT has WANT's links with buckets within one of WANT's
#   retrans JSON T0 T1     iperf3 client's retransmits in the intervals inside [T0, T1] s
PL=$BED_TMP/policy_load.py
cat >"$PL" <<'PY'
import json, re, sys

def snap(args):
    for host, path in zip(args[::2], args[1::2]):
        sec = {}
        for part in open(path).read().split("@@ ")[1:]:
            name, _, body = part.partition("\n")
            sec[name.strip()] = body
        for d in json.loads(sec["link"]):
            s = d["stats64"]
            for di in ("rx", "tx"):
                for c in ("dropped", "errors", "bytes"):
                    print(f"{host} link {d['ifname']} {di}_{c} {s[di][c]}")
        for q in json.loads(sec["qdisc"]):
            print(f"{host} qdisc {q['dev']} {q['kind']}:{q['handle']} drops {q.get('drops', 0)}")
        for reason, v in json.loads(sec["bpf"]).items():
            print(f"{host} bpf {reason} packets {v['packets']}")
        maps = sorted(json.loads(sec["maps"]), key=lambda p: ":" in p["ml_address"])
        for l in maps[0]["links"] if maps else []:  # a peer's entries share the counters
            print(f"{host} slot {l['link']} packets {l['packets']}")
            print(f"{host} slot {l['link']} bytes {l['bytes']}")
            print(f"{host} buckets {l['link']} {l['buckets']}")
        for p in json.loads(sec["peers"]):
            for l in p["links"]:
                print(f"{host} session_up {l['link']} {int(l.get('session') == 'up')}")
        head = {}
        for line in sec["snmp"].splitlines():
            grp, _, rest = line.partition(":")
            if grp in head:
                for k, v in zip(head.pop(grp), rest.split()):
                    print(f"{host} {grp} {k} {v}")
            else:
                head[grp] = rest.split()

def load(path):
    return {k: int(v) for k, v in (l.rstrip("\n").rsplit(" ", 1) for l in open(path))}

def delta(s0, s1, rx):
    a, b = load(s0), load(s1)
    out = [f"{k}+{b[k] - a[k]}" for k in sorted(b) if re.search(rx, k) and k in a and b[k] != a[k]]
    out += [f"{k} (new)" for k in sorted(b) if re.search(rx, k) and k not in a]
    print(", ".join(out) if out else "none")

def slots(snap, host):
    return [k.split()[2] for k in snap if k.startswith(f"{host} slot ") and k.endswith(" packets")]

def get(s0, s1, key):
    a, b = load(s0), load(s1)
    host, kind = key.split()[:2]
    moved = kind == "slot" and slots(a, host) != slots(b, host)  # counters are per slot index
    print(b[key] - a[key] if key in a and key in b and not moved else "?")

def val(s, key):
    print(load(s).get(key, "?"))

def buckets():
    e = sorted(json.load(sys.stdin), key=lambda p: ":" in p["ml_address"])
    print(" ".join(",".join(f"{l['link']}={l['buckets']}" for l in p["links"]) for p in e))

def near(want, got):
    w = dict(kv.split("=") for kv in want.split())
    ok = bool(got.split())
    for entry in got.split():
        g = dict(kv.split("=") for kv in entry.split(","))
        ok = ok and set(g) == set(w) and all(abs(int(g[k]) - int(w[k])) <= 1 for k in w)
    sys.exit(0 if ok else 1)

def retrans(path, t0, t1):
    t0, t1 = float(t0), float(t1)
    ivs = json.load(open(path)).get("intervals", [])
    print(sum(iv["sum"].get("retransmits", 0) for iv in ivs
              if iv["sum"]["start"] >= t0 - 0.1 and iv["sum"]["end"] <= t1 + 0.1))

cmd, args = sys.argv[1], sys.argv[2:]
{"snap": lambda: snap(args), "delta": lambda: delta(*args), "get": lambda: get(*args),
 "val": lambda: val(*args), "buckets": buckets, "near": lambda: near(*args),
 "retrans": lambda: retrans(*args)}[cmd]()
PY

# raw HOST: HOST's counters, sections separated by "@@ NAME" lines. The device and IP
# counters are read back to back: the backup check compares their deltas at ~19 Gbit/s,
# where the mlinkctl calls between them (slower under ASan, and not equally slow at every
# snapshot) would skew one window against the other by hundreds of MB.
raw() {
  # shellcheck disable=SC2016 # expanded by the inner sh
  bed_exec "$1" sh -c 'echo "@@ link"; ip -s -j link show
    echo "@@ snmp"; cat /proc/net/snmp /proc/net/netstat; echo "@@ qdisc"; tc -s -j qdisc show
    echo "@@ bpf"; "$1" -n "$2" -j show drops; echo "@@ maps"; "$1" -n "$2" -j show maps
    echo "@@ peers"; "$1" -n "$2" -j show peers' \
    sh "$MLINKCTL" "$(ml_node_id "$1")"
}
declare -A SNAP_T=() # snapshot name -> seconds since the iperf3 start
# snap NAME: both hosts' counters now, in $BED_TMP/snap-NAME.
snap() {
  SNAP_T[$1]=$(t_now)
  raw a >"$BED_TMP/raw-a-$1"
  raw b >"$BED_TMP/raw-b-$1"
  python3 "$PL" snap a "$BED_TMP/raw-a-$1" b "$BED_TMP/raw-b-$1" >"$BED_TMP/snap-$1"
}
dlt() { python3 "$PL" delta "$BED_TMP/snap-$1" "$BED_TMP/snap-$2" "$3"; }
get() { python3 "$PL" get "$BED_TMP/snap-$1" "$BED_TMP/snap-$2" "$3"; }
val() { python3 "$PL" val "$BED_TMP/snap-$1" "$2"; }
DROPS='^[ab] (link \S+ [rt]x_(dropped|errors)|qdisc .* drops|bpf \S+ packets)$'
KDROPS='^[ab] (Ip|IpExt|Tcp|TcpExt|Udp) \S*(Drop|Discard|Err|NoRoute|Prune|Collapse|Fail)'

# buckets HOST: "eth0=N,eth1=M,eth2=K" of the IPv4 entry, then of the IPv6 entry.
buckets() { ml_peers_json "$1" | python3 "$PL" buckets; }
# wait_buckets WANT SECS: both maps, both entries, within one bucket of WANT ("eth0=N ...").
wait_buckets() {
  local want=$1 secs=$2 i
  for ((i = 0; i < secs * 20; i++)); do
    python3 "$PL" near "$want" "$(buckets a)" && python3 "$PL" near "$want" "$(buckets b)" &&
      { echo "  buckets a: $(buckets a); b: $(buckets b)"; return 0; }
    sleep 0.05
  done
  fail "want '$want' (up to one bucket) in both maps within $secs s; a: '$(buckets a)', b: '$(buckets b)'"
  return 1
}
# log_ms HOST REGEX [AFTER_MS]: time of day (ms) of the first line of HOST's agent log
# matching REGEX (at or after AFTER_MS); nothing when none does.
log_ms() {
  awk -v re="$2" -v after="${3:-0}" '$0 ~ re { split($1, t, /[:.]/)
    ms = ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000 + t[4]; if (ms >= after) { print ms; exit } }' \
    "$BED_TMP/mlinkd-$1.log"
}
# since REQ MS: "N ms" after REQ (time of day, ms), or "?" when MS is empty (no log line).
since() { if [ -n "$2" ]; then echo "$(($2 - $1)) ms"; else echo '?'; fi; }
# steer_flows HOST: receive packet steering on every device of HOST, over all CPUs (at most
# 32). Through `ip netns exec`, whose private /sys shows this netns' devices.
steer_flows() {
  local n
  n=$(nproc)
  ((n <= 32)) || n=32
  # shellcheck disable=SC2016 # expanded by the inner sh
  ip netns exec "$(bed_ns "$1")" sh -c 'for q in /sys/class/net/*/queues/rx-*/rps_cpus; do echo "$1" >"$q"; done' \
    sh "$(printf '%x' $(((1 << n) - 1)))"
}

# backup_quiet S0 S1 NAME: eth2 sent no datapath packet on either host from S0 to S1, and no
# more than the control traffic's budget through the device (BFD every 30 ms and discovery
# hellos measure ~5.5 kB/s; 50 kB/s allowed): carrying data it would send megabytes.
backup_quiet() {
  local s0=$1 s1=$2 name=$3 h p d budget
  budget=$(awk -v a="${SNAP_T[$s0]}" -v b="${SNAP_T[$s1]}" 'BEGIN { printf "%d", 50000 * (b - a) }')
  for h in a b; do
    p=$(get "$s0" "$s1" "$h slot eth2 packets"); d=$(get "$s0" "$s1" "$h link eth2 tx_bytes")
    echo "  $name (${SNAP_T[$s0]}-${SNAP_T[$s1]} s): $h's backup eth2: datapath packets $p, device tx bytes $d (budget $budget)"
    [ "$p" = 0 ] || fail "$name: $h's backup eth2 carried datapath packets ($p)"
    if ! [[ $d =~ ^[0-9]+$ ]] || ((d > budget)); then
      fail "$name: $h's backup eth2 sent $d bytes, over the control traffic's $budget"
    fi
  done
}

IPERF_PID=
IPERF_JSON=
# iperf_start NAME PARALLEL SECS [EXTRA...]: iperf3 a -> b in the background, T0 = now.
iperf_start() {
  IPERF_JSON=$BED_TMP/iperf-$1.json
  T0=$(now_ms)
  bed_iperf a 10.88.0.2 "$2" "$3" "$IPERF_JSON" -p "$PORT" -i "$IVL" "${@:4}" &
  IPERF_PID=$!
  BED_PIDS+=("$IPERF_PID")
}
# iperf_wait: wait for the client; iperf3's failure is an assertion failure.
iperf_wait() {
  local rc=0
  wait "$IPERF_PID" || rc=$?
  bed__forget_pid "$IPERF_PID"
  [ "$rc" -eq 0 ] || fail "iperf3 exited $rc: $(head -c 300 "$IPERF_JSON")"
  return 0
}
# iperf_stalls: streams under 1 Mbit/s for more than 1 s (receiver side), "?" if unreadable.
iperf_stalls() {
  python3 "$BED_LIB_DIR/iperf_summary.py" --stall-mbps 1 --stall-secs 1 --value stalls "$IPERF_JSON" 2>/dev/null || echo '?'
}
iperf_line() {
  echo "  iperf3: $(bed_iperf_mbps "$IPERF_JSON" 2>/dev/null || echo '?') Mbit/s received, $(python3 "$BED_LIB_DIR/iperf_summary.py" --value retransmits "$IPERF_JSON" 2>/dev/null || echo '?') retransmits, $(iperf_stalls) stalls (under 1 Mbit/s for more than 1 s)"
}
# tcp_report S0 S1 NAME: what TCP did over a window. The sender a: segments retransmitted,
# how (fast retransmit: on duplicate or SACKed ACKs, which with no packet dropped means
# reordering; tail-loss probe; RTO), how many b reported as duplicates (DSACK: spurious),
# how often it detected reordering; the receiver b: segments that arrived out of order.
# Sets REORDER_RTX[NAME] (a's fast-retransmitted segments) and REORDER_OFO[NAME].
declare -A REORDER_RTX=() REORDER_OFO=()
tcp_report() {
  local s0=$1 s1=$2 name=$3 k v line="" reo=0
  REORDER_RTX[$name]=$(get "$s0" "$s1" "a TcpExt TCPFastRetrans")
  REORDER_OFO[$name]=$(get "$s0" "$s1" "b TcpExt TCPOFOQueue")
  for k in TCPSACKReorder TCPTSReorder TCPRenoReorder; do
    v=$(get "$s0" "$s1" "a TcpExt $k")
    [[ ! $v =~ ^[0-9]+$ ]] || reo=$((reo + v))
  done
  echo "  $name (${SNAP_T[$s0]}-${SNAP_T[$s1]} s): a retransmitted $(get "$s0" "$s1" "a Tcp RetransSegs") segments (iperf3: $(python3 "$PL" retrans "$IPERF_JSON" "${SNAP_T[$s0]}" "${SNAP_T[$s1]}")): fast retransmits ${REORDER_RTX[$name]}, tail-loss probes $(get "$s0" "$s1" "a TcpExt TCPLossProbes"), RTOs $(get "$s0" "$s1" "a TcpExt TCPTimeouts"); DSACKed by b (spurious) $(get "$s0" "$s1" "a TcpExt TCPDSACKRecvSegs"); reordering detected by a $reo times; b queued ${REORDER_OFO[$name]} segments out of order"
  for k in TCPLostRetransmit TCPDSACKUndo TCPSpuriousRTOs TCPSackRecovery; do
    line+=" $k=$(get "$s0" "$s1" "a TcpExt $k")"
  done
  echo "    a:$line; b: TCPDSACKOldSent=$(get "$s0" "$s1" "b TcpExt TCPDSACKOldSent") TCPOFODrop=$(get "$s0" "$s1" "b TcpExt TCPOFODrop")"
}

ml_two_hosts 3
ml_start a "$(ml_config_mesh a 1 eth0 eth1 eth2)"
ml_start b "$(ml_config_mesh b 2 eth0 eth1 eth2)"
for ((i = 0; i < 100; i++)); do
  ml_links_up a && ml_links_up b && [ "$(buckets a | wc -w)" = 2 ] && [ "$(buckets b | wc -w)" = 2 ] && break
  sleep 0.1
done
wait_buckets "eth0=86 eth1=85 eth2=85" 5 || bed_die "the peers did not come up: ${FAILED[*]}"
steer_flows a
steer_flows b
BED_SERVER_INTERVAL=$IVL bed_iperf_server b "$PORT"

# ---- 1. drain under iperf3 -P8 -------------------------------------------------------------
# 11 s, past the last snapshot (at 8 s) by more than a snapshot takes: under ASan one takes
# over a second, and b's last window once began after a 9 s transfer had ended.
echo "== drain: iperf3 -P8 a -> b for 11 s; baseline 2-4 s, drain eth1 (on a) at 4 s, undrain at 6 s"
iperf_start drain 8 11
at 2
snap base0
at 4
snap drain0
req_drain=$(tod_ms)
ctl a link set eth1 drain >/dev/null
at 5
snap dmid
at 6
snap drain1
req_undrain=$(tod_ms)
ctl a link set eth1 undrain >/dev/null
at 7
snap umid
at 8
snap undrain1
iperf_wait
echo "  drain applied (agents' logs) by a $(since "$req_drain" "$(log_ms a 'link eth1: policy .*"drain":true' "$req_drain")"), by b $(since "$req_drain" "$(log_ms b 'eth1=down/0.* [(]discovery[)]' "$req_drain")") after the request; undrain by a $(since "$req_undrain" "$(log_ms a 'link eth1: policy .*"drain":false' "$req_undrain")"), by b $(since "$req_undrain" "$(log_ms b 'eth1=up/.* [(]discovery[)]' "$req_undrain")")"
for h in a b; do
  echo "  $h at ${SNAP_T[dmid]} s: eth1 buckets $(val dmid "$h buckets eth1"), BFD session up $(val dmid "$h session_up eth1"); eth1 datapath packets ${SNAP_T[dmid]}-${SNAP_T[drain1]} s: $(get dmid drain1 "$h slot eth1 packets"), after the undrain ${SNAP_T[umid]}-${SNAP_T[undrain1]} s: $(get umid undrain1 "$h slot eth1 packets")"
  [ "$(val dmid "$h buckets eth1")" = 0 ] || fail "$h: eth1 still has buckets 1 s after the drain"
  [ "$(val dmid "$h session_up eth1")" = 1 ] || fail "$h: eth1's BFD session not Up while drained"
  [ "$(get dmid drain1 "$h slot eth1 packets")" = 0 ] || fail "$h: drained eth1 carried datapath packets"
  [[ $(get umid undrain1 "$h slot eth1 packets") =~ ^[1-9][0-9]*$ ]] || fail "$h: eth1 carried nothing after the undrain"
done
for w in "base0 drain0 baseline" "drain0 drain1 drain" "drain1 undrain1 undrain"; do
  read -r s0 s1 name <<<"$w"
  echo "  $name (${SNAP_T[$s0]}-${SNAP_T[$s1]} s): link/qdisc/BPF drop counters changed: $(dlt "$s0" "$s1" "$DROPS")"
  echo "    kernel drop/error counters changed: $(dlt "$s0" "$s1" "$KDROPS")"
  echo "    a's datapath packets: eth0 +$(get "$s0" "$s1" "a slot eth0 packets") eth1 +$(get "$s0" "$s1" "a slot eth1 packets") eth2 +$(get "$s0" "$s1" "a slot eth2 packets")"
done
for w in "drain0 drain1 drain" "drain1 undrain1 undrain"; do
  read -r s0 s1 name <<<"$w"
  d=$(dlt "$s0" "$s1" "$DROPS")
  [ "$d" = none ] || fail "$name changed drop counters: $d (baseline window: $(dlt base0 drain0 "$DROPS"))"
done
tcp_report base0 drain0 baseline
tcp_report drain0 drain1 drain
tcp_report drain1 undrain1 undrain
echo "  reordering retransmits during drain: ${REORDER_RTX[drain]} (out-of-order segments at b: ${REORDER_OFO[drain]}; baseline window of equal length: ${REORDER_RTX[baseline]} and ${REORDER_OFO[baseline]})"
echo "  reordering retransmits during undrain: ${REORDER_RTX[undrain]} (out-of-order segments at b: ${REORDER_OFO[undrain]})"
iperf_line
[ "$(iperf_stalls)" = 0 ] || fail "drain/undrain: $(iperf_stalls) stream(s) under 1 Mbit/s for more than 1 s"

# ---- 2. weights 3:1, eth2 backup ----------------------------------------------------------
echo "== weights 3:1 (eth0 weight 3 on a and b), eth2 backup (on a)"
ctl a link set eth2 backup on >/dev/null
ctl a link set eth0 weight 3 >/dev/null
ctl b link set eth0 weight 3 >/dev/null
# The rebalancer's overrides of the drain run end once their buckets are idle.
wait_buckets "eth0=192 eth1=64 eth2=0" 5 || true
for h in a b; do
  echo "  $h: $(ctl "$h" -j show peers | python3 -c '
import json, sys
print(", ".join("%s weight %d %s buckets %d" % (l["link"], l["weight"], l["role"], l["buckets"])
                for l in json.load(sys.stdin)[0]["links"]))')"
done
echo "== iperf3 -P16 -b ${RATE} (per stream) a -> b for 6.5 s; bytes per link counted 1.5-6 s"
iperf_start weights 16 6.5 -b "$RATE"
at 1.5
snap w0
at 3.5
# Which link each connection is on now (the datapath's answer, rebalancer included).
ports=$(bed_exec a ss -Htn state established dst 10.88.0.2 "dport = :$PORT" | awk '{n = split($3, s, ":"); print s[n]}')
for p in $ports; do ctl a -j flow get 10.88.0.2 proto tcp sport "$p" dport "$PORT"; done >"$BED_TMP/flows.jsonl"
at 6
snap w1
iperf_wait
# The data connections (iperf3's control connection aside) per link.
flows=$(python3 -c 'import collections, json, sys
data = {c["local_port"] for c in json.load(open(sys.argv[1]))["start"]["connected"]}
c = collections.Counter(f["link"] for f in map(json.loads, open(sys.argv[2])) if f["sport"] in data)
print(" ".join(f"{k} {v}" for k, v in sorted(c.items())))' "$IPERF_JSON" "$BED_TMP/flows.jsonl")
e0=$(get w0 w1 "a slot eth0 bytes"); e1=$(get w0 w1 "a slot eth1 bytes"); e2=$(get w0 w1 "a slot eth2 bytes")
share=$(awk -v a="$e0" -v b="$e1" -v c="$e2" 'BEGIN { printf "%.1f", (a + b + c) ? 100 * a / (a + b + c) : 0 }')
echo "  ${SNAP_T[w0]}-${SNAP_T[w1]} s, a's datapath bytes: eth0 $e0, eth1 $e1, eth2 $e2: eth0 share $share % (want 65..85)"
echo "  data connections per link at 3.5 s (flow get): $flows"
echo "  b's datapath bytes (ACKs): eth0 $(get w0 w1 "b slot eth0 bytes"), eth1 $(get w0 w1 "b slot eth1 bytes"), eth2 $(get w0 w1 "b slot eth2 bytes")"
backup_quiet w0 w1 "primaries up"
iperf_line
if ! [[ $e0 =~ ^[0-9]+$ && $e1 =~ ^[0-9]+$ && $e2 =~ ^[0-9]+$ ]] ||
  ! awk -v s="$share" 'BEGIN { exit !(s >= 65 && s <= 85) }'; then
  fail "eth0 carried $share % of the bytes, not 75 ± 10"
fi

# ---- 3. backup takes over when both primaries fail ---------------------------------------
echo "== backup: iperf3 -P8 a -> b for 9 s; eth0 down on a at 2.5 s, eth1 down on a at 4.5 s"
iperf_start backup 8 9
at 1
snap f0
at 2.5
snap f1
bed_exec a ip link set eth0 down
at 3
snap f2
at 4.5
snap f3
bed_exec a ip link set eth1 down
at 5.5
snap f4
at 8
snap f5
iperf_wait
for w in "f0 f1 all-up" "f2 f3 eth0-down"; do
  read -r s0 s1 name <<<"$w"
  echo "  $name (${SNAP_T[$s0]}-${SNAP_T[$s1]} s): a's datapath packets eth0 +$(get "$s0" "$s1" "a slot eth0 packets") eth1 +$(get "$s0" "$s1" "a slot eth1 packets") eth2 +$(get "$s0" "$s1" "a slot eth2 packets")"
  backup_quiet "$s0" "$s1" "$name"
done
for h in a b; do
  echo "  $h buckets at ${SNAP_T[f2]} s (eth0 down): eth0 $(val f2 "$h buckets eth0") eth1 $(val f2 "$h buckets eth1") eth2 $(val f2 "$h buckets eth2"); at ${SNAP_T[f4]} s (eth0, eth1 down): eth2 $(val f4 "$h buckets eth2")"
  [ "$(val f2 "$h buckets eth1")" = 256 ] || fail "$h: eth1 does not have every bucket with eth0 down"
  [ "$(val f4 "$h buckets eth2")" = 256 ] || fail "$h: eth2 does not have every bucket with both primaries down"
done
for h in a b; do
  out=$(get f4 f5 "$h IpExt OutOctets"); e2=$(get f4 f5 "$h link eth2 tx_bytes")
  echo "  both down (${SNAP_T[f4]}-${SNAP_T[f5]} s): $h sent $out IP bytes, eth2 device tx bytes $e2"
  if ! [[ $out =~ ^[0-9]+$ && $e2 =~ ^[0-9]+$ ]] ||
    ! awk -v o="$out" -v e="$e2" 'BEGIN { exit !(o > 0 && e >= 0.9 * o) }'; then
    fail "$h: eth2 did not carry the traffic with both primaries down ($e2 of $out bytes)"
  fi
done
iperf_line
bed_exec a ping -c 5 -i 0.05 -w 3 -q 10.88.0.2 >/dev/null || fail "no ping over the backup"

ml_stop a
ml_stop b
if ((${#FAILED[@]})); then
  printf '  - %s\n' "${FAILED[@]}" >&2
  bed_die "policy under load: ${#FAILED[@]} assertion(s) failed"
fi
echo "PASS: policy under load"
