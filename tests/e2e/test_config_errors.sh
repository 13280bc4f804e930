#!/usr/bin/env bash
# Bad configurations (issue 3, acceptance 4): mlinkd exits non-zero, names
# file:line:key, and creates nothing — no ML device, pins, filters, neighbours,
# sysctl changes. Checked for both `mlinkd --config` and `mlinkd --check`.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 2
good=$(ml_config a 1 2 2)

snapshot() {  # everything mlinkd could have touched in host a
  bed_exec a ip -o link show | sed 's/^[0-9]*: //' | cut -d' ' -f1-2
  bed_exec a ip -o addr show | awk '{print $2, $4}'
  bed_exec a ip route show; bed_exec a ip -6 route show
  bed_exec a ip neigh show nud all | grep -c managed || true
  for i in 0 1; do bed_exec a tc qdisc show dev "eth$i"; done
  bed_exec a cat /proc/sys/net/ipv4/conf/all/arp_announce /proc/sys/net/ipv4/conf/eth0/arp_announce
  ls /sys/fs/bpf/mlink 2>/dev/null | grep "$(ml_node_id a)" || true
}

# expect_error NAME LINE KEY FILE: both modes fail with "FILE:LINE:...: KEY: ..." and no change.
expect_error() {
  local name=$1 line=$2 key=$3 file=$4 mode out rc
  for mode in "" "--check"; do
    local before after
    before=$(snapshot)
    rc=0
    out=$(bed_exec a timeout 10 "$MLINKD" --config "$file" $mode 2>&1) || rc=$?
    after=$(snapshot)
    [ "$rc" -ne 0 ] || bed_die "$name ${mode:-run}: exit 0"
    grep -qE "$(basename "$file"):$line:([0-9]+:)? $key: " <<<"$out" ||
      bed_die "$name ${mode:-run}: expected $(basename "$file"):$line:...: $key: in: $out"
    [ "$before" = "$after" ] || bed_die "$name ${mode:-run}: system changed: $(diff <(echo "$before") <(echo "$after"))"
    echo "  ok  $name ${mode:-(run)}: $(grep -oE "[^ ]*$(basename "$file"):.*" <<<"$out" | head -1)"
  done
}

# mutate NAME SED_EXPR: a copy of the good config with one edit.
mutate() { local f="$BED_TMP/$1.toml"; sed "$2" "$good" >"$f"; echo "$f"; }

echo "== the good config passes --check"
bed_exec a "$MLINKD" --config "$good" --check >/dev/null 2>&1 || bed_die "good config rejected"

echo "== bad configs"
expect_error unknown_key 4 'node.colour' "$(mutate unknown_key '3a colour = "blue"')"
expect_error bad_address 3 'node.ml_address\[0\]' \
  "$(mutate bad_address 's|"10.88.0.1/16"|"10.88.0.300/16"|')"
expect_error bad_nexthop 11 'peer\[0\].via\[0\].address\[0\]' \
  "$(mutate bad_nexthop 's|"10.0.0.2"|"10.0.0.x"|')"
f=$(mutate missing_device 's|device = "eth1"$|device = "eth7"|')
sed -i 's|device = "eth1",|device = "eth7",|' "$f"
expect_error missing_device 6 'link\[1\].device' "$f"
f="$BED_TMP/duplicate_peer.toml"
cp "$good" "$f"
printf '[[peer]]\nml_address = ["10.88.0.2"]\nvia = [ { device = "eth0", address = ["10.0.0.2"] } ]\n' >>"$f"
expect_error duplicate_peer 17 'peer\[1\].ml_address\[0\]' "$f"

echo "== a bad key file: named with its own line, under the config key that names it"
printf '1 00112233\n2 xyz\n' >"$BED_TMP/bad.key"
chmod 600 "$BED_TMP/bad.key"
out=$(expect_error bad_key_file 15 'bfd.key_file' "$(mutate bad_key_file "s|key_file = .*|key_file = \"$BED_TMP/bad.key\"|")")
echo "$out"
grep -q "bad.key:2: key is not hexadecimal" <<<"$out" || bed_die "key file line not named: $out"
chmod 644 "$BED_TMP/bad.key"
expect_error open_key_file 15 'bfd.key_file' "$(mutate open_key_file "s|key_file = .*|key_file = \"$BED_TMP/bad.key\"|")"

echo "== a config that does not fit the host: next hop outside the link's subnets"
expect_error foreign_nexthop 11 'peer\[0\].via\[0\].address\[0\]' \
  "$(mutate foreign_nexthop 's|"10.0.0.2"|"10.9.0.2"|')"

echo "== an existing ML device is not taken over"
bed_exec a ip link add ml0 type veth peer name ml0p
expect_error ml0_exists 1 'node.ml_device' "$good"
bed_exec a ip link del ml0
echo "PASS: config errors"
