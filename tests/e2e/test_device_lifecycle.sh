#!/usr/bin/env bash
# Devices that go away under a running agent (issue 12): two hosts, static peers over eth0
# and eth1, BFD keyed.
# - eth1 deleted (the veth pair: both ends) and made anew with its addresses: both agents
#   take it out at once and back into service by themselves, with new BFD sockets, a new
#   ingress program and new neighbours on the new ifindex, and the old link's sockets closed.
#   The old agent matched links by ifindex and never took it back.
# - a's eth1 renamed to another name: a takes it out (the config names eth1), b's session
#   goes Down with it; renamed back: in service again on both ends.
# - a's ML device deleted: the datapath cannot follow a new one (its ifindex is compiled into
#   the programs), so a stops cleanly (b is told: AdminDown) and exits 1, leaving no pins or
#   programs and without spinning on the dead tun; a restarted agent brings everything back.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 2
ml_start a "$(ml_config a 1 2 2)"
ml_start b "$(ml_config b 2 1 2)"
# links HOST: the IPv4 entry's "dev=state/buckets ..." as the datapath has it.
links() {
  ml_peers_json "$1" | python3 -c '
import json, sys
e = next((p for p in json.load(sys.stdin) if ":" not in p["ml_address"]), None)
print(" ".join(l["link"] + "=" + l["state"] + "/" + str(l["buckets"]) for l in e["links"]) if e else "")'
}
# wait_links HOST WANT SECS: HOST's map shows WANT within SECS; prints how long it took.
wait_links() {
  local host=$1 want=$2 secs=$3 t0 i
  t0=$(date +%s%3N)
  for ((i = 0; i < secs * 20; i++)); do
    if [ "$(links "$host")" = "$want" ]; then
      echo "  $host: $want after $(($(date +%s%3N) - t0)) ms"
      return 0
    fi
    sleep 0.05
  done
  bed_die "$host: want '$want' within $secs s, have '$(links "$host")'"
}
has_ingress() { bed_exec "$1" tc filter show dev "$2" ingress | grep -q ml_ingress; }
both="eth0=up/128 eth1=up/128"
wait_links a "$both" 10
wait_links b "$both" 10

echo "== eth1 deleted (both ends of the veth), then made anew"
ifindex_of() { bed_exec "$1" ip -o link show "$2" | cut -d: -f1; }
# Sockets a's agent holds: the deleted link's BFD sockets must close, not pile up per deletion.
sockets_of_a() { find "/proc/$ML_PID_a/fd" -lname 'socket:*' | wc -l; }
sockets_before=$(sockets_of_a)
old_ifindex=$(ifindex_of a eth1)
bed_exec a ip link del eth1
wait_links a "eth0=up/256" 5
wait_links b "eth0=up/256" 5
grep -q "link eth1 (ifindex $old_ifindex): device deleted; out of service" "$BED_TMP/mlinkd-a.log" ||
  bed_die "a did not say it took eth1 out"
bed_link a b 1
new_ifindex=$(ifindex_of a eth1)
[ "$new_ifindex" != "$old_ifindex" ] || bed_die "the new eth1 has the old ifindex"
wait_links a "$both" 10
wait_links b "$both" 10
grep -q "link eth1 (ifindex $new_ifindex): device back, in service again" "$BED_TMP/mlinkd-a.log" ||
  bed_die "a did not say eth1 is back"
has_ingress a eth1 || bed_die "no ingress program on a's new eth1"
bed_exec a ping -c 3 -i 0.05 -q 10.88.0.2 >/dev/null || bed_die "no ML traffic after eth1 came back"
sockets_after=$(sockets_of_a)
echo "  a's agent holds $sockets_after sockets after eth1 came back, $sockets_before before"
((sockets_after == sockets_before)) || bed_die "a's agent kept the deleted eth1's sockets open"

echo "== a's eth1 renamed, then renamed back"
bed_exec a ip link set eth1 down
bed_exec a ip link set eth1 name mlren1
bed_exec a ip link set mlren1 up
wait_links a "eth0=up/256" 5
wait_links b "eth0=up/256 eth1=down/0" 5
grep -q "device renamed to mlren1; out of service" "$BED_TMP/mlinkd-a.log" ||
  bed_die "a did not say eth1 was renamed"
has_ingress a mlren1 && bed_die "the renamed device kept a's ingress program"
bed_exec a ip link set mlren1 down
bed_exec a ip link set mlren1 name eth1
bed_exec a ip link set eth1 up
# Its IPv6 address went when it went down (keep_addr_on_down = 0): until it is back, a waits
# (the static peer's IPv6 next hop is in none of eth1's subnets).
for ((i = 0; i < 40; i++)); do
  grep -q "link eth1: a device of that name is back, waiting for its addresses" \
    "$BED_TMP/mlinkd-a.log" && break
  sleep 0.05
done
[ "$(links a)" = "eth0=up/256" ] || bed_die "a took eth1 back without its addresses"
bed_exec a ip -6 addr add "$(bed_addr6 a 1)/64" dev eth1 nodad
wait_links a "$both" 10
wait_links b "$both" 10

echo "== a's ML device deleted"
node_a=$(ml_node_id a)
bed_exec a ip link del ml0
for ((i = 0; i < 100; i++)); do
  kill -0 "$ML_PID_a" 2>/dev/null || break
  sleep 0.05
done
kill -0 "$ML_PID_a" 2>/dev/null && bed_die "mlinkd on a still runs 5 s after ml0 was deleted"
rc=0
wait "$ML_PID_a" || rc=$?
bed__forget_pid "$ML_PID_a"
[ "$rc" = 1 ] || bed_die "mlinkd on a exited $rc, want 1"
grep -q "ML device ml0 gone under the agent" "$BED_TMP/mlinkd-a.log" || bed_die "a did not say why it stopped"
grep -q "removed everything this agent created" "$BED_TMP/mlinkd-a.log" || bed_die "a did not stop cleanly"
[ ! -e "/sys/fs/bpf/mlink/$node_a" ] || bed_die "a left its pins behind"
for dev in eth0 eth1; do has_ingress a "$dev" && bed_die "a left its ingress program on $dev"; done
echo "  a exited 1 after a clean stop: no pins, no programs"
wait_links b "eth0=down/0 eth1=down/0" 3 # told by AdminDown, not by a detection time
ml_start a "$BED_TMP/a.toml"
wait_links a "$both" 10
wait_links b "$both" 10
bed_exec a ping -c 3 -i 0.05 -q 10.88.0.2 >/dev/null || bed_die "no ML traffic after a restarted"

for h in a b; do ml_stop "$h"; done
echo "PASS: a link deleted, recreated and renamed came back by itself; ml0 deleted ended the agent cleanly"
