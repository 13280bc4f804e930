# shellcheck shell=bash
# mlink.sh - mlink helpers on top of bed.sh: configs, agents, counters.
# Source after bed.sh. MLINK_BUILD_DIR points at the build (default: build/).

ML_BUILD=${MLINK_BUILD_DIR:-$(cd "$BED_LIB_DIR/../../.." && pwd)/build}
MLINKD=$ML_BUILD/mlinkd
MLINKCTL=$ML_BUILD/mlinkctl

# ml_node_id HOST: the node id of HOST in this run (unique: it names bpffs pins).
ml_node_id() { echo "${BED_RUNID}$1"; }

# ml_keys: the run's BFD and topology key files (mode 0600, one pair for all hosts). Made
# once; ml_config runs in $(...), so the files, not variables, remember it.
ml_keys() {
  ML_BFD_KEY=$BED_TMP/bfd.key
  ML_TOPO_KEY=$BED_TMP/topo.key
  [ -e "$ML_TOPO_KEY" ] && return 0
  (umask 077
   echo "1 $(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$ML_BFD_KEY"
   echo "1 $(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$ML_TOPO_KEY")
}

# ml_config HOST HOSTNUM PEERNUM NLINKS [NODE_EXTRA_TOML]: write HOST's config for a static
# peer reachable over eth0..eth<NLINKS-1>, BFD authenticated; prints the path. [bfd] comes
# last, so lines 1.. are as they were before it existed. ML_NODE_TOML (e.g. 'spread =
# "flowlet"') goes into [node] of every config, here and in ml_config_mesh.
ml_config() {
  local host=$1 me=$2 peer=$3 n=$4 extra=${5:-} f i
  f="$BED_TMP/$host.toml"
  ml_keys
  {
    echo "[node]"
    echo "id = \"$(ml_node_id "$host")\""
    echo "ml_address = [\"10.88.0.$me/16\", \"fd88::$me/64\"]"
    [ -n "$extra" ] && echo "$extra"
    [ -n "${ML_NODE_TOML:-}" ] && echo "$ML_NODE_TOML"
    for ((i = 0; i < n; i++)); do printf '[[link]]\ndevice = "eth%d"\n' "$i"; done
    echo "[[peer]]"
    echo "ml_address = [\"10.88.0.$peer\", \"fd88::$peer\"]"
    echo "via = ["
    for ((i = 0; i < n; i++)); do
      echo "  { device = \"eth$i\", address = [\"10.$i.0.$peer\", \"fd00:0:0:$i::$peer\"] },"
    done
    echo "]"
    printf '[bfd]\nkey_file = "%s"\n' "$ML_BFD_KEY"
  } >"$f"
  echo "$f"
}

# ml_config_mesh HOST HOSTNUM LINK... [-- EXTRA_TOML]: HOST's config with discovery and no
# [[peer]]: its links are the devices given (each 10.<i>.0.HOSTNUM/24); prints the path.
ml_config_mesh() {
  local host=$1 me=$2 f dev extra=""
  shift 2
  f="$BED_TMP/$host.toml"
  ml_keys
  {
    echo "[node]"
    echo "id = \"$(ml_node_id "$host")\""
    echo "ml_address = [\"10.88.0.$me/16\", \"fd88::$me/64\"]"
    [ -n "${ML_NODE_TOML:-}" ] && echo "$ML_NODE_TOML"
    while [ $# -gt 0 ]; do
      dev=$1
      shift
      if [ "$dev" = "--" ]; then extra=$*; break; fi
      printf '[[link]]\ndevice = "%s"\n' "$dev"
    done
    printf '[bfd]\nkey_file = "%s"\n' "$ML_BFD_KEY"
    printf '[discovery]\nkey_file = "%s"\n' "$ML_TOPO_KEY"
    [ -n "$extra" ] && echo "$extra"
  } >"$f"
  echo "$f"
}

# ml_start HOST CONFIG: run mlinkd in HOST and wait (5 s at most) until its datapath is up.
# PID in ML_PID_<HOST>. Links come up only once the peer's agent runs too: ml_wait_links.
ml_start() {
  local host=$1 cfg=$2 i
  bed_bg "$host" "mlinkd-$host.log" "$MLINKD" --config "$cfg"
  printf -v "ML_PID_$host" '%s' "$BED_LAST_PID"
  for ((i = 0; i < 50; i++)); do
    ml_peers_json "$host" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$BED_TMP/mlinkd-$host.log" >&2
  bed_die "mlinkd on $host did not start"
}

# ml_wait_links HOST...: wait (10 s at most) until every link of every peer is up on each HOST.
ml_wait_links() {
  local host i
  for host in "$@"; do
    for ((i = 0; i < 100; i++)); do
      ml_links_up "$host" && continue 2
      sleep 0.1
    done
    cat "$BED_TMP/mlinkd-$host.log" >&2
    bed_die "links of $host not all up after 10 s"
  done
}

# ml_stop HOST: SIGTERM mlinkd in HOST and wait for it; fails if it did not exit 0, or did not
# exit within ML_STOP_SECS (30; a sanitized agent's leak check included): then what each of
# its threads was blocked in is printed before it is killed.
ml_stop() {
  local host=$1 var="ML_PID_$1" rc=0 i
  local pid=${!var} limit=$((${ML_STOP_SECS:-30} * 10))
  kill -TERM "$pid"
  for ((i = 0; i < limit; i++)); do
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break
    [ -e "/proc/$pid" ] || break
    sleep 0.1
  done
  if ((i == limit)); then
    ml__dump_stuck "$pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
    cat "$BED_TMP/mlinkd-$host.log" >&2
    bed_die "mlinkd on $host (PID $pid) did not exit within $((limit / 10)) s of SIGTERM"
  fi
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$BED_TMP/mlinkd-$host.log" >&2; bed_die "mlinkd on $host exited $rc"; }
}

# ml__dump_stuck PID: each thread's state, wait channel and kernel stack.
ml__dump_stuck() {
  local t
  for t in /proc/"$1"/task/*; do
    echo "--- thread ${t##*/} ($(cat "$t/comm" 2>/dev/null)): $(awk '{print $3}' "$t/stat" 2>/dev/null)," \
      "wchan $(cat "$t/wchan" 2>/dev/null), syscall $(cut -d' ' -f1 "$t/syscall" 2>/dev/null)"
    cat "$t/stack" 2>/dev/null || true
  done
}

# ml_peers_json HOST: the datapath entries (mlinkctl -j show maps: read from the pins, so it
# works while the agent restarts).
ml_peers_json() { bed_exec "$1" "$MLINKCTL" -n "$(ml_node_id "$1")" -j show maps; }

# ml_links_up HOST: true when every slot of every peer entry is up.
ml_links_up() {
  ml_peers_json "$1" 2>/dev/null | python3 -c '
import json, sys
try:
    peers = json.load(sys.stdin)
except ValueError:
    sys.exit(1)  # agent not ready: no pins yet
ok = peers and all(l["state"] == "up" for p in peers for l in p["links"])
sys.exit(0 if ok else 1)'
}

# ml_wait_slot HOST DEV STATE SECS: HOST's IPv4 entry has DEV in STATE (up|down) within SECS;
# prints how long the wait took (from this call: it includes polling's own cost).
ml_wait_slot() {
  local host=$1 dev=$2 want=$3 secs=$4 t0 i st
  t0=$(date +%s%3N)
  for ((i = 0; i < secs * 20; i++)); do
    st=$(ml_peers_json "$host" | python3 -c '
import json, sys
e = next(p for p in json.load(sys.stdin) if ":" not in p["ml_address"])
print(next((l["state"] for l in e["links"] if l["link"] == sys.argv[1]), "none"))' "$dev")
    if [ "$st" = "$want" ]; then
      echo "  $host: $dev $want within $(($(date +%s%3N) - t0)) ms of the check starting"
      return 0
    fi
    sleep 0.05
  done
  bed_die "$host: $dev not $want within $secs s"
}

# ml_slot_packets HOST: "link packets bytes" per link (v4 and v6 entries share counters).
ml_slot_packets() {
  ml_peers_json "$1" | python3 -c '
import json, sys
peers = json.load(sys.stdin)
for l in peers[0]["links"]:
    print(l["link"], l["packets"], l["bytes"])'
}

# ml_prog_ids HOST: ids of the BPF programs attached by TC in HOST (ml0 and links).
ml_prog_ids() {
  bed_exec "$1" bpftool -j net show | python3 -c '
import json, sys
for ns in json.load(sys.stdin):
    for hook in ns.get("tc", []):
        print(hook["id"])'
}

# ml_l3link HOST_A HOST_B IDX: an L3 point-to-point link named eth<IDX> in both hosts (a tun
# device in each, no MAC, NOARP, joined by tests/tools/ml-tunrelay), up, with the addresses
# bed_link gives. Ends (and the devices with it) at cleanup, or with bed_kill on ML_RELAY_PID_<IDX>.
ml_l3link() {
  local a=$1 b=$2 idx=$3 h dev="eth$3" log="relay-eth$3.log" i
  # The relay is the wire: on two busy cores it must not be the bottleneck (niced up), and
  # the tun's own queue (1000, twice the default) must outlast a moment it is not scheduled
  # without adding its own delay: 10000 delayed echoes by ~15 ms under load (bench: one-way
  # detection 109 ms against 93 ms), 500 dropped them (a lossy link under iperf3).
  bed_bg "$a" "$log" nice -n -10 "$ML_BUILD/tests/ml-tunrelay" "$(bed_ns "$a")" "$dev" \
    "$(bed_ns "$b")" "$dev"
  printf -v "ML_RELAY_PID_$idx" '%s' "$BED_LAST_PID"
  for ((i = 0; i < 100; i++)); do
    grep -qx ready "$BED_TMP/$log" && break
    kill -0 "$BED_LAST_PID" 2>/dev/null || bed_die "ml-tunrelay for $dev: $(cat "$BED_TMP/$log")"
    sleep 0.02
  done
  grep -qx ready "$BED_TMP/$log" || bed_die "ml-tunrelay for $dev not ready after 2 s"
  for h in "$a" "$b"; do
    bed_exec "$h" ip addr add "10.${idx}.0.${BED_HOSTNUM[$h]}/24" dev "$dev"
    bed_exec "$h" ip -6 addr add "fd00:0:0:${idx}::${BED_HOSTNUM[$h]}/64" dev "$dev" nodad
    bed_exec "$h" ip link set "$dev" txqueuelen 1000 up
  done
}

# ml_two_hosts NLINKS [RATE]: hosts a (1) and b (2) joined by eth0..eth<NLINKS-1>, each end
# shaped to RATE when given. Links named in ML_L3_LINKS (indexes, e.g. "1") are L3 links
# (ml_l3link), the others veth; those named in ML_IPOIB_LINKS are veth whose ingress, on both
# hosts, hands mlink IPoIB's 24-byte L2 header (ml-l2shape).
ml_two_hosts() {
  local n=$1 rate=${2:-} i h
  bed_host a 1
  bed_host b 2
  for ((i = 0; i < n; i++)); do
    if [[ " ${ML_L3_LINKS:-} " == *" $i "* ]]; then ml_l3link a b "$i"; else bed_link a b "$i"; fi
    if [ -n "$rate" ]; then bed_shape a "eth$i" "$rate"; bed_shape b "eth$i" "$rate"; fi
    if [[ " ${ML_IPOIB_LINKS:-} " == *" $i "* ]]; then
      for h in a b; do bed_exec "$h" "$ML_BUILD/tests/ml-l2shape" attach "eth$i"; done
    fi
  done
}

# ml_fault HOST DEV DIR PPM: drop PPM parts per million of DEV's packets in direction DIR
# (ingress|egress), carrier up; calling it again changes the rate. Removed at cleanup.
ml_fault() {
  local host=$1 dev=$2 dir=$3 ppm=$4 tool=$ML_BUILD/tests/ml-fault
  if bed_exec "$host" "$tool" show "$dev" "$dir" >/dev/null 2>&1; then
    bed_exec "$host" "$tool" set "$dev" "$dir" "$ppm"
  else
    bed_exec "$host" "$tool" attach "$dev" "$dir" "$ppm"
    bed_on_cleanup bed_exec "$host" "$tool" detach "$dev" "$dir"
  fi
}

# ml_fault_dropped HOST DEV DIR: packets the fault has dropped so far.
ml_fault_dropped() { bed_exec "$1" "$ML_BUILD/tests/ml-fault" show "$2" "$3" | awk '{print $4}'; }

# ml_slot_packets_of HOST PEER_ML_ADDR: "link packets bytes" per link of that peer entry.
ml_slot_packets_of() {
  ml_peers_json "$1" | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["ml_address"] == sys.argv[1]:
        for l in p["links"]:
            print(l["link"], l["packets"], l["bytes"])' "$2"
}
