#!/usr/bin/env bash
# Links in and out of service at run time (issue 5): two hosts by discovery, three veth
# links; a's config names eth0 and eth1 only, b's all three.
# - `mlinkctl link add eth2` on a: a's ingress program is on eth2, and both maps carry eth2
#   within a few seconds (one hello round trip, then BFD Up).
# - `mlinkctl link del eth1` on a, under iperf3 -P4: both maps drop eth1 at once (BFD
#   AdminDown tells b), no stream stalls, and a's ingress program and managed neighbours on
#   eth1 are gone. `monitor` reports both changes.
# - Bad requests (unknown device, a link twice, the ML device, del of a non-link) fail
#   with a clear error and change nothing.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 3
ml_start a "$(ml_config_mesh a 1 eth0 eth1)"
ml_start b "$(ml_config_mesh b 2 eth0 eth1 eth2)"
ctl() { local h=$1; shift; bed_exec "$h" "$MLINKCTL" -n "$(ml_node_id "$h")" "$@"; }
# links HOST: the IPv4 entry's "dev=state/buckets ..." as the datapath has it.
links() {
  ml_peers_json "$1" | python3 -c '
import json, sys
e = next((p for p in json.load(sys.stdin) if ":" not in p["ml_address"]), None)
print(" ".join(l["link"] + "=" + l["state"] + "/" + str(l["buckets"]) for l in e["links"]) if e else "")'
}
# wait_links WANT SECS: both maps show WANT within SECS; prints how long it took.
wait_links() {
  local want=$1 secs=$2 t0 i
  t0=$(date +%s%3N)
  for ((i = 0; i < secs * 50; i++)); do
    if [ "$(links a)" = "$want" ] && [ "$(links b)" = "$want" ]; then
      echo "  a and b: $want after $(($(date +%s%3N) - t0)) ms"
      return 0
    fi
    sleep 0.02
  done
  bed_die "want '$want' on both ends within $secs s; a: '$(links a)', b: '$(links b)'"
}
has_ingress() { bed_exec a tc filter show dev "$1" ingress | grep -q ml_ingress; }

wait_links "eth0=up/128 eth1=up/128" 10
bed_bg a monitor-a.log "$MLINKCTL" -n "$(ml_node_id a)" -j monitor
mon_pid=$BED_LAST_PID
sleep 0.2

echo "== link add eth2 on a"
has_ingress eth2 && bed_die "eth2 has an ingress program before link add"
ctl a link add eth2 | tee "$BED_TMP/link-add.txt" | sed 's/^/  /'
has_ingress eth2 || bed_die "no ingress program on eth2 after link add"
wait_links "eth0=up/86 eth1=up/85 eth2=up/85" 8
ctl a -j show links | python3 -c '
import json, sys
ls = {l["link"]: l for l in json.load(sys.stdin)}
assert "eth2" in ls and ls["eth2"]["peers"] == ["10.88.0.2"], ls' || bed_die "show links lacks eth2"
bed_exec a ping -c 3 -i 0.05 -q 10.88.0.2 >/dev/null || bed_die "no traffic after link add"

echo "== link del eth1 on a, under iperf3 -P4"
bed_iperf_server b 5201 -i 0.2
bed_iperf a 10.88.0.2 4 6 "$BED_TMP/iperf-del.json" -p 5201 -i 0.2 >/dev/null &
iperf_pid=$!
sleep 2
ctl a link del eth1 | sed 's/^/  /'
wait "$iperf_pid" || bed_die "iperf3 failed"
wait_links "eth0=up/128 eth2=up/128" 1
# How soon b took eth1 out: its BFD Down (AdminDown received) after a's removal, from the logs.
t_del=$(grep -m1 'link eth1: removed' "$BED_TMP/mlinkd-a.log" | cut -d' ' -f1)
down=$(grep 'link eth1: BFD up -> down' "$BED_TMP/mlinkd-b.log" | tail -1) ||
  bed_die "b's eth1 session did not go down"
[[ $down == *neighbor_down* ]] || bed_die "b's eth1 session did not end by AdminDown: $down"
python3 -c '
import sys
ms = lambda t: sum(float(x) * m for x, m in zip(t.split(":"), (3600e3, 60e3, 1e3)))
print("  b: eth1 BFD Down (neighbor signalled) %.0f ms after a removed it" % (ms(sys.argv[2]) - ms(sys.argv[1])))
' "$t_del" "$(cut -d' ' -f1 <<<"$down")"
python3 "$BED_LIB_DIR/iperf_summary.py" --stall-mbps 1 --stall-secs 1 "$BED_TMP/iperf-del.json" |
  sed 's/^/  /'
stalls=$(python3 "$BED_LIB_DIR/iperf_summary.py" --stall-mbps 1 --stall-secs 1 --value stalls \
  "$BED_TMP/iperf-del.json")
[ "$stalls" = 0 ] || bed_die "$stalls streams stalled across link del"
has_ingress eth1 && bed_die "eth1 still has the ingress program after link del"
managed=$(bed_exec a ip neigh show dev eth1 | grep -c MANAGED || true)
[ "$managed" = 0 ] || bed_die "$managed managed neighbours left on eth1"

echo "== bad requests: a clear error, nothing changes"
for args in "add eth9" "add eth0" "add ml0" "add eth1 weight 0" "add eth1 colour red" "del eth9"; do
  # shellcheck disable=SC2086
  if out=$(ctl a link $args 2>&1); then bed_die "link $args succeeded"; fi
  echo "  link $args: $out"
done
wait_links "eth0=up/128 eth2=up/128" 1

echo "== link add eth1 again: back on both ends"
ctl a link add eth1 weight 1 >/dev/null
wait_links "eth0=up/86 eth1=up/85 eth2=up/85" 8

sleep 0.2
bed_kill "$mon_pid"
python3 - "$BED_TMP/monitor-a.log" <<'EOF' || bed_die "monitor missed a link add/del"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cfg = [(e["action"], e["link"]) for e in ev if e["type"] == "config"]
print("  monitor (config):", cfg)
assert cfg == [("link add", "eth2"), ("link del", "eth1"), ("link add", "eth1")], cfg
EOF
ml_stop a
ml_stop b
echo "PASS: links added and removed at run time"
