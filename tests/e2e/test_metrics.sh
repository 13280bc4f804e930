#!/usr/bin/env bash
# Prometheus /metrics (issue 5, acceptance 4): against two hosts with 3 links, the agent's
# /metrics (default 127.0.0.1:9464, in its netns) passes `promtool check metrics`, its
# per-link packet counters agree with the BPF maps (mlinkctl show maps), and it shows every
# session Up with its echo RTT; taking a link down shows in the gauges and the state-change
# counter. The scrape is saved in the temp dir (docs/OPERATIONS.md quotes it).
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init
command -v promtool >/dev/null || bed_die "promtool not installed (Debian package prometheus)"

ml_two_hosts 3
ml_start a "$(ml_config a 1 2 3)"
ml_start b "$(ml_config b 2 1 3)"
ml_wait_links a b
scrape() {
  bed_exec "$1" python3 -c '
import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode(), end="")'
}

echo "== traffic, then the counters of /metrics against the maps"
bed_exec a ping -c 30 -i 0.02 -q 10.88.0.2 >/dev/null
bed_exec a ping -6 -c 30 -i 0.02 -q fd88::2 >/dev/null
sleep 1.3 # /metrics is rebuilt every second
scrape a >"$BED_TMP/metrics-a.txt"
bed_exec a "$MLINKCTL" -n "$(ml_node_id a)" -j show maps >"$BED_TMP/maps-a.json"
# MLINK_METRICS_SAMPLE=FILE: the scrape is copied there (how docs/OPERATIONS.md's is made).
[ -z "${MLINK_METRICS_SAMPLE:-}" ] || cp "$BED_TMP/metrics-a.txt" "$MLINK_METRICS_SAMPLE"
promtool check metrics <"$BED_TMP/metrics-a.txt" || bed_die "promtool check metrics failed"
echo "  promtool check metrics: ok ($(grep -vc '^#' "$BED_TMP/metrics-a.txt") samples)"
python3 - "$BED_TMP/metrics-a.txt" "$BED_TMP/maps-a.json" <<'PY' || bed_die "/metrics disagrees"
import json, re, sys
samples = {}
for line in open(sys.argv[1]):
    m = re.match(r'(\w+)(?:\{(.*)\})? (\S+)$', line.strip())
    if m and not line.startswith("#"):
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
        samples[(m.group(1), labels)] = float(m.group(3))
def get(name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))
maps = json.load(open(sys.argv[2]))
entry = next(e for e in maps if e["ml_address"] == "10.88.0.2")
ok = True
for l in entry["links"]:
    got = get("mlink_link_packets_total", peer="10.88.0.2", link=l["link"])
    print(f"  {l['link']}: /metrics {got:.0f} packets, map {l['packets']}")
    ok &= got == l["packets"]
    ok &= get("mlink_link_bytes_total", peer="10.88.0.2", link=l["link"]) == l["bytes"]
    ok &= get("mlink_link_up", peer="10.88.0.2", link=l["link"]) == 1
    ok &= get("mlink_bfd_session_up", peer="10.88.0.2", link=l["link"]) == 1
    ok &= 0 < get("mlink_bfd_echo_rtt_seconds", peer="10.88.0.2", link=l["link"]) < 0.1
    ok &= get("mlink_bfd_echo_loss_ratio", peer="10.88.0.2", link=l["link"]) == 0
    ok &= get("mlink_bfd_state_changes_total", peer="10.88.0.2", link=l["link"]) >= 1
ok &= sum(get("mlink_link_buckets", peer="10.88.0.2", link=l["link"]) for l in entry["links"]) == 256
ok &= sum(l["packets"] for l in entry["links"]) >= 60  # both pings counted
ok &= any(k[0] == "mlink_agent_info" for k in samples)
ok &= get("mlink_protocol_dropped_packets_total", protocol="bfd", reason="replay") == 0
sys.exit(0 if ok else 1)
PY

echo "== a link taken down shows in the gauges and the state-change counter"
before=$(grep -E '^mlink_bfd_state_changes_total\{.*link="eth1"' "$BED_TMP/metrics-a.txt" | awk '{print $2}')
bed_exec b ip link set eth1 down
sleep 1.3
scrape a >"$BED_TMP/metrics-a-down.txt"
grep -E '^mlink_link_up\{.*link="eth1".*\} 0$' "$BED_TMP/metrics-a-down.txt" >/dev/null ||
  bed_die "mlink_link_up of eth1 is not 0: $(grep 'mlink_link_up' "$BED_TMP/metrics-a-down.txt")"
grep -E '^mlink_bfd_session_up\{.*link="eth1".*\} 0$' "$BED_TMP/metrics-a-down.txt" >/dev/null ||
  bed_die "mlink_bfd_session_up of eth1 is not 0"
after=$(grep -E '^mlink_bfd_state_changes_total\{.*link="eth1"' "$BED_TMP/metrics-a-down.txt" | awk '{print $2}')
echo "  eth1: link_up 0, session_up 0, state changes $before -> $after"
awk -v a="$after" -v b="$before" 'BEGIN { exit !(a > b) }' || bed_die "state changes did not grow"
bed_exec b ip link set eth1 up

ml_stop a
ml_stop b
echo "PASS: /metrics"
