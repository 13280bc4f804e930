#!/usr/bin/env bash
# Run-time policy (issue 5, acceptance 3, in part): two hosts by discovery, 2 links.
# `mlinkctl link set eth0 weight 3` on both ends gives a 3:1 bucket split (192/64) in both
# maps; `link set eth1 drain` on one end alone takes eth1's buckets away on BOTH ends (LINKS
# carries it) while its BFD session stays Up, and undrain brings them back; eth1 as backup
# on one end carries nothing while eth0 is up. Bad requests change nothing.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 2
ml_start a "$(ml_config_mesh a 1 eth0 eth1)"
ml_start b "$(ml_config_mesh b 2 eth0 eth1)"
for ((i = 0; i < 100; i++)); do
  ml_links_up a && ml_links_up b && [ "$(ml_peers_json a | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ] && break
  sleep 0.1
done
ctl() { local h=$1; shift; bed_exec "$h" "$MLINKCTL" -n "$(ml_node_id "$h")" "$@"; }
# buckets HOST: "eth0=N eth1=M" of the IPv4 entry, as the datapath has it.
buckets() {
  ml_peers_json "$1" | python3 -c '
import json, sys
e = next(p for p in json.load(sys.stdin) if ":" not in p["ml_address"])
print(" ".join(l["link"] + "=" + str(l["buckets"]) for l in e["links"]))'
}
# wait_buckets WANT: both maps show WANT within 3 s.
wait_buckets() {
  local want=$1 i
  for ((i = 0; i < 60; i++)); do
    [ "$(buckets a)" = "$want" ] && [ "$(buckets b)" = "$want" ] && { echo "  a and b: $want"; return 0; }
    sleep 0.05
  done
  bed_die "want '$want' on both ends; a: '$(buckets a)', b: '$(buckets b)'"
}
session() { ctl "$1" -j show peers | python3 -c '
import json, sys
p = json.load(sys.stdin)[0]
print(next(l["session"] for l in p["links"] if l["link"] == sys.argv[1]))' "$2"; }

wait_buckets "eth0=128 eth1=128"
echo "== weights 3:1 (set on both ends; each end uses the smaller of the two)"
ctl a link set eth0 weight 3 >"$BED_TMP/ctl-a-link-set.txt"
sed 's/^/    /' "$BED_TMP/ctl-a-link-set.txt"
wait_buckets "eth0=128 eth1=128" # b still says 1: min(3, 1) = 1
ctl b link set eth0 weight 3 >/dev/null
wait_buckets "eth0=192 eth1=64"

echo "== drain eth1 on a only: both ends move its buckets, the session stays Up"
ctl a link set eth1 drain >/dev/null
wait_buckets "eth0=256 eth1=0"
[ "$(session a eth1)" = up ] && [ "$(session b eth1)" = up ] || bed_die "eth1's session went down"
bed_exec a ping -c 5 -i 0.05 -q 10.88.0.2 >/dev/null || bed_die "no traffic while eth1 drains"
ctl a link set eth1 undrain >/dev/null
wait_buckets "eth0=192 eth1=64"

echo "== eth1 as backup (on b): nothing while eth0 is up"
ctl b link set eth1 backup on >/dev/null
wait_buckets "eth0=256 eth1=0"
ctl b link set eth1 backup off >/dev/null
wait_buckets "eth0=192 eth1=64"

echo "== bad requests: a clear error, nothing changes"
for args in "eth9 weight 2" "eth0 weight 0" "eth0 weight 300" "eth0 backup maybe" "eth0 colour red" "eth0"; do
  # shellcheck disable=SC2086
  if out=$(ctl a link set $args 2>&1); then bed_die "link set $args succeeded"; fi
  echo "  link set $args: $out"
done
wait_buckets "eth0=192 eth1=64"
ml_stop a
ml_stop b
echo "PASS: run-time policy"
