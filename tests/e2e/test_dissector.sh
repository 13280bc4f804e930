#!/usr/bin/env bash
# The tshark dissector of the topology protocol (dist/wireshark/mlink.lua):
#  1. the committed vectors (proto/vectors/topo) in a pcap: the valid ones decode with
#     their fields' values, MAC verified with the test key and no expert info; each
#     reject_* shows its one defect as the expected expert info; every cut and 300 byte
#     flips of the valid ones decode with no Lua error.
#  2. a real capture on eth0 between two hosts in discovery mode with keys (a's eth0
#     weight 2, eth1 backup): HELLO and LINKS from both, over IPv4 and IPv6, every field
#     present with the hosts' values (node ids, addresses, hold time, links, epoch), every
#     MAC verified with the run's key, no malformed packet, no expert info, no Lua error.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root tshark text2pcap tcpdump
bed_init
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LUA=$ROOT/dist/wireshark/mlink.lua
CHECK=$BED_LIB_DIR/topo_dissector_check.py

# dissect PCAP OUT KEYFILE: tshark with the dissector verifying MACs with KEYFILE, PDML to
# OUT. Fails on anything on stderr but the as-root warning: a Lua load error is only a
# message there, tshark goes on.
dissect() {
  tshark -X "lua_script:$LUA" -o "mlink.topo.key_file:$3" -r "$1" -T pdml >"$2" 2>"$2.err" ||
    bed_die "tshark on $1 failed: $(cat "$2.err")"
  if grep -v 'Running as user "root"' "$2.err" | grep -q .; then
    bed_die "tshark on $1 said: $(cat "$2.err")"
  fi
}
# to_pcap TEXT PCAP: text2pcap input (hexdumps) as UDP 28012 -> 28012 over IPv4.
to_pcap() {
  text2pcap -4 10.0.0.1,10.0.0.2 -u 28012,28012 "$1" "$2" >"$2.log" 2>&1 || bed_die "text2pcap $1: $(cat "$2.log")"
}

# Some tshark versions run no Lua as root unless told to (init.lua's
# run_user_scripts_when_superuser): without this check every decode below would fail
# as "not decoded as mlink.topo", not saying why.
tshark -G protocols -X "lua_script:$LUA" 2>/dev/null | grep -q $'\tmlink.topo$' ||
  bed_die "tshark does not load $LUA (Lua disabled, or as root?): $(tshark -G protocols -X "lua_script:$LUA" 2>&1 >/dev/null)"

echo "== the committed vectors"
python3 "$CHECK" dump "$ROOT/proto/vectors/topo" "$BED_TMP/vectors.txt" "$BED_TMP/vectors.names"
to_pcap "$BED_TMP/vectors.txt" "$BED_TMP/vectors.pcap"
# The vectors' test key (proto/vectors/topo/README.md).
echo "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" >"$BED_TMP/vectors.key"
dissect "$BED_TMP/vectors.pcap" "$BED_TMP/vectors.pdml" "$BED_TMP/vectors.key"
python3 "$CHECK" vectors "$BED_TMP/vectors.pdml" "$BED_TMP/vectors.names" || bed_die "vectors"

echo "== cuts and byte flips of the valid vectors: no Lua error"
python3 "$CHECK" fuzz "$ROOT/proto/vectors/topo" "$BED_TMP/fuzz.txt" "$((16#$BED_RUNID))"
to_pcap "$BED_TMP/fuzz.txt" "$BED_TMP/fuzz.pcap"
dissect "$BED_TMP/fuzz.pcap" "$BED_TMP/fuzz.pdml" "$BED_TMP/vectors.key"
python3 "$CHECK" fuzz-check "$BED_TMP/fuzz.pdml" "$(grep -c '^000000 ' "$BED_TMP/fuzz.txt")" || bed_die "fuzzed packets (seed $((16#$BED_RUNID)))"

echo "== a real capture: a and b in discovery mode, tcpdump on a's eth0"
bed_host a 1
bed_host b 2
for i in 0 1; do bed_link a b "$i"; done
CAP=$BED_TMP/eth0.pcap
# -Z root: tcpdump would write as user tcpdump, which may not write into our 0700 temp dir.
# -U: each packet is written as it comes, so the capture can be read while it runs.
bed_bg a tcpdump.log timeout 120 tcpdump -i eth0 -nn -U -Z root -w "$CAP" udp port 28012
TCPDUMP_PID=$BED_LAST_PID
for ((i = 0; i < 50; i++)); do
  grep -qs "listening on eth0" "$BED_TMP/tcpdump.log" && break
  kill -0 "$TCPDUMP_PID" 2>/dev/null || bed_die "tcpdump: $(cat "$BED_TMP/tcpdump.log")"
  sleep 0.1
done
grep -qs "listening on eth0" "$BED_TMP/tcpdump.log" || bed_die "tcpdump not listening after 5 s"

epoch_min=$(date +%s)
ml_keys  # here, not only inside $(ml_config_mesh): ML_TOPO_KEY is needed below
cfg_a=$(ml_config_mesh a 1 eth0 eth1)
sed -i -e '/device = "eth0"/a weight = 2' -e '/device = "eth1"/a backup = true' "$cfg_a"
ml_start a "$cfg_a"
ml_start b "$(ml_config_mesh b 2 eth0 eth1)"
A=$(ml_node_id a)
B=$(ml_node_id b)

# Until the capture holds a HELLO naming the other host and a LINKS from each, over both
# families (20 s at most; HELLOs come every second, IPv6 once link-local DAD is done).
want="HELLO $A 4,HELLO $A 6,HELLO $B 4,HELLO $B 6,LINKS $A,LINKS $B"
have=""
for ((i = 0; i < 40; i++)); do
  have=$(tshark -X "lua_script:$LUA" -r "$CAP" -Y 'mlink.topo.seen or mlink.topo.type == 2' \
           -T fields -e mlink.topo.type -e mlink.topo.node_id -e ipv6.dst 2>/dev/null |
           awk -F'\t' '{ print ($1 == 1 ? "HELLO " $2 " " ($3 == "" ? 4 : 6) : "LINKS " $2) }' |
           LC_ALL=C sort -u | paste -sd, || true)
  [ "$have" = "$want" ] && break
  sleep 0.5
done
[ "$have" = "$want" ] || bed_die "capture holds '$have', want '$want'"
bed_kill "$TCPDUMP_PID"  # SIGTERM: tcpdump writes out and exits
epoch_max=$(($(date +%s) + 1))  # an agent's epoch is its start time + 1
ml_stop a
ml_stop b

dissect "$CAP" "$BED_TMP/eth0.pdml" "$ML_TOPO_KEY"
python3 "$CHECK" capture "$BED_TMP/eth0.pdml" "$A" "$B" "$epoch_min" "$epoch_max" ||
  bed_die "capture: see above (pcap kept in $BED_TMP)"
tshark -X "lua_script:$LUA" -r "$CAP" 2>/dev/null | head -4 | sed 's/^/    /'
echo "PASS: tshark dissector"
