#!/usr/bin/env bash
# Discovery (issue 4, acceptance 1): three hosts, each pair joined by 2-3 links, configs
# without [[peer]]. Every host must learn every peer and exactly the links it shares with
# it (a host with links in only some subnets gets only those) within 2 s of the agents
# starting, with BFD Up on each; then ping and iperf3 over the ML addresses work between
# all pairs, over every shared link.
#   a-b: eth0 eth1 eth2    a-c: eth3 eth4    b-c: eth5 eth6
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

bed_host a 1
bed_host b 2
bed_host c 3
for i in 0 1 2; do bed_link a b "$i"; done
for i in 3 4; do bed_link a c "$i"; done
for i in 5 6; do bed_link b c "$i"; done
declare -A LINKS=([a]="eth0 eth1 eth2 eth3 eth4" [b]="eth0 eth1 eth2 eth5 eth6" [c]="eth3 eth4 eth5 eth6")
# Expected: "peer ML address: its links" for each host.
declare -A WANT=(
  [a]="10.88.0.2:eth0,eth1,eth2 10.88.0.3:eth3,eth4"
  [b]="10.88.0.1:eth0,eth1,eth2 10.88.0.3:eth5,eth6"
  [c]="10.88.0.1:eth3,eth4 10.88.0.2:eth5,eth6"
)

# view HOST [6]: "peer:link,link..." for every IPv4 (IPv6) peer entry whose links are all
# up, sorted.
view() {
  ml_peers_json "$1" 2>/dev/null | python3 -c '
import json, sys
try:
    peers = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
out = []
for p in peers:
    if (":" in p["ml_address"]) != (sys.argv[1] == "6"):
        continue
    if all(l["state"] == "up" for l in p["links"]):
        out.append(p["ml_address"] + ":" + ",".join(sorted(l["link"] for l in p["links"])))
print(" ".join(sorted(out)))' "${2:-4}"
}

t0=$(date +%s%N)
for h in a b c; do
  # shellcheck disable=SC2086
  bed_bg "$h" "mlinkd-$h.log" "$MLINKD" --config "$(ml_config_mesh "$h" "${BED_HOSTNUM[$h]}" ${LINKS[$h]})"
  printf -v "ML_PID_$h" '%s' "$BED_LAST_PID"
done
declare -A learned_ms=()
for ((i = 0; i < 100 && ${#learned_ms[@]} < 3; i++)); do
  for h in a b c; do
    [ -n "${learned_ms[$h]:-}" ] && continue
    [ "$(view "$h")" = "${WANT[$h]}" ] && learned_ms[$h]=$((($(date +%s%N) - t0) / 1000000))
  done
  sleep 0.05
done
for h in a b c; do
  if [ -z "${learned_ms[$h]:-}" ]; then
    cat "$BED_TMP/mlinkd-$h.log" >&2
    bed_die "$h: learned '$(view "$h")', want '${WANT[$h]}'"
  fi
  echo "  $h: every peer and exactly the shared links, all up, ${learned_ms[$h]} ms after start"
  ((learned_ms[$h] <= 2000)) || bed_die "$h took more than 2 s"
done

# IPv6 next hops resolve by neighbour discovery, which a freshly created link can only
# start once its link-local address has passed DAD (about 1-2 s here); an entry's link is
# up only with its next hop resolved, so the IPv6 entries may come up a little later.
echo "== IPv6 ML entries too"
declare -A WANT6=()
for h in a b c; do WANT6[$h]=$(sed -E 's/10\.88\.0\.([0-9]+)/fd88::\1/g' <<<"${WANT[$h]}"); done
for h in a b c; do
  for ((i = 0; i < 100; i++)); do
    [ "$(view "$h" 6)" = "${WANT6[$h]}" ] && break
    sleep 0.05
  done
  [ "$(view "$h" 6)" = "${WANT6[$h]}" ] || bed_die "$h: IPv6 entries '$(view "$h" 6)', want '${WANT6[$h]}'"
  echo "  $h: IPv6 entries up $((($(date +%s%N) - t0) / 1000000)) ms after start"
done

# What a peer advertises in subnets this host has no link in is shown, not used: b shares
# eth0-2 with a, but a also has eth3/eth4 (to c), which b must list as not shared.
echo "== mlinkctl show peers: the links a peer has that this host does not share"
bed_exec b "$MLINKCTL" -n "$(ml_node_id b)" show peers >"$BED_TMP/show-peers-b.txt"
sed 's/^/    /' "$BED_TMP/show-peers-b.txt"
bed_exec b "$MLINKCTL" -n "$(ml_node_id b)" -j show peers | python3 -c '
import json, sys
peers = {p["ml_address"]: p for p in json.load(sys.stdin)}
a = peers["10.88.0.1"]
got = sorted(s for u in a["unshared_links"] for s in u["subnets"] if ":" not in s)
assert got == ["10.3.0.0/24", "10.4.0.0/24"], got
assert [l["link"] for l in a["links"]] == ["eth0", "eth1", "eth2"], a["links"]
c = peers["10.88.0.3"]
got = sorted(s for u in c["unshared_links"] for s in u["subnets"] if ":" not in s)
assert got == ["10.3.0.0/24", "10.4.0.0/24"], got
' || bed_die "b: unshared links of its peers not as expected"

echo "== ping and iperf3 between all pairs, over every shared link"
for h in a b c; do bed_iperf_server "$h" 5201; done
for pair in a:b a:c b:c; do
  src=${pair%:*} dst=${pair#*:}
  bed_exec "$src" ping -c 3 -i 0.2 -W 1 "10.88.0.${BED_HOSTNUM[$dst]}" >/dev/null ||
    bed_die "ping $src -> $dst over ML failed"
  bed_exec "$src" ping -6 -c 3 -i 0.2 -W 1 "fd88::${BED_HOSTNUM[$dst]}" >/dev/null ||
    bed_die "ping -6 $src -> $dst over ML failed"
  before=$(ml_slot_packets_of "$src" "10.88.0.${BED_HOSTNUM[$dst]}")
  bed_iperf "$src" "10.88.0.${BED_HOSTNUM[$dst]}" 8 3 "$BED_TMP/iperf-$pair.json" -p 5201
  mbps=$(bed_iperf_mbps "$BED_TMP/iperf-$pair.json")
  after=$(ml_slot_packets_of "$src" "10.88.0.${BED_HOSTNUM[$dst]}")
  used=$(python3 -c '
import sys
b = dict(l.split()[:2] for l in sys.argv[1].splitlines())
a = dict(l.split()[:2] for l in sys.argv[2].splitlines())
print(" ".join(sorted(k for k in a if int(a[k]) > int(b.get(k, 0)) + 100)))' "$before" "$after")
  echo "  $src -> $dst: $mbps Mbit/s over: $used"
  want=$(grep -oE "10.88.0.${BED_HOSTNUM[$dst]}:[^ ]*" <<<"${WANT[$src]}" | cut -d: -f2 | tr , ' ')
  [ "$used" = "$want" ] || bed_die "$src -> $dst used '$used', want '$want'"
done

for h in a b c; do ml_stop "$h"; done
echo "PASS: three-host mesh by discovery"
