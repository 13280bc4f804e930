#!/usr/bin/env bash
# The Grafana dashboard (dist/grafana/mlink.json) uses only metrics that exist: the JSON
# parses, every panel has a Prometheus datasource and a query, and every metric and
# label name of its PromQL (panels and variables) is in a real /metrics scrape of an
# agent in a discovery pair with keys (2 links, traffic sent), which passes
# `promtool check metrics`. Names are extracted by tests/e2e/lib/grafana_dashboard_check.py.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root promtool
bed_init
DASH=$(cd "$(dirname "$0")/../.." && pwd)/dist/grafana/mlink.json
CHECK=$BED_LIB_DIR/grafana_dashboard_check.py

echo "== the dashboard's structure"
python3 "$CHECK" selftest
python3 "$CHECK" structure "$DASH" || bed_die "dashboard structure"
mapfile -t used < <(python3 "$CHECK" names "$DASH")
echo "  metrics used: ${used[*]}"

echo "== a scrape of a real agent (a, discovery pair with b over 2 links)"
bed_host a 1
bed_host b 2
for i in 0 1; do bed_link a b "$i"; done
ml_start a "$(ml_config_mesh a 1 eth0 eth1)"
ml_start b "$(ml_config_mesh b 2 eth0 eth1)"
ml_wait_links a b
bed_exec a ping -c 20 -i 0.02 -q 10.88.0.2 >/dev/null || bed_die "ping over ml0 failed"
scrape() {
  bed_exec a python3 -c '
import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode(), end="")'
}
# A family appears once it has a sample (e.g. authenticated packets after the first one
# verified): scrape until every name is there, 10 s at most (the figures are rebuilt
# every second), then report whatever is still missing.
SCRAPE=$BED_TMP/metrics-a.txt
for ((i = 0; i < 40; i++)); do
  scrape >"$SCRAPE" || bed_die "scrape of a's /metrics failed"
  missing=0
  for m in "${used[@]}"; do grep -q "^${m}[{ ]" "$SCRAPE" || missing=1; done
  ((missing)) || break
  sleep 0.25
done
promtool check metrics <"$SCRAPE" || bed_die "promtool check metrics failed on the scrape"
python3 "$CHECK" check "$DASH" "$SCRAPE" || bed_die "the dashboard uses metrics the agent does not export (scrape: $SCRAPE)"

ml_stop a
ml_stop b
echo "PASS: Grafana dashboard"
