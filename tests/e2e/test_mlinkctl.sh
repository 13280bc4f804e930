#!/usr/bin/env bash
# The operator's read-only surface (issue 5, acceptance 1 and 2, in part): against two hosts
# with 3 links, every `mlinkctl show` works in text and in -j (the JSON parses and says what
# the system is), `mlinkctl monitor` gets the event of a link taken down within 100 ms of the
# change, and mlinkctl fails clearly with no agent. Text outputs are kept in the temp dir
# (docs/OPERATIONS.md shows them).
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 3
ml_start a "$(ml_config a 1 2 3)"
ml_start b "$(ml_config b 2 1 3)"
ml_wait_links a b
ctl() { local h=$1; shift; bed_exec "$h" "$MLINKCTL" -n "$(ml_node_id "$h")" "$@"; }
# check HOST PYTHON-EXPR ARGS...: `mlinkctl -j ARGS` on HOST parses and PYTHON-EXPR (over j)
# holds; the text form of the same command works too (saved as ctl-<args>.txt).
check() {
  local h=$1 expr=$2 out name
  shift 2
  name="$*"
  out=$(ctl "$h" -j "$@") || bed_die "mlinkctl -j $* failed on $h"
  python3 -c 'import json, sys; j = json.loads(sys.argv[2]); sys.exit(0 if eval(sys.argv[1]) else 1)' \
    "$expr" "$out" || bed_die "mlinkctl -j $* on $h: '$expr' does not hold for: $out"
  ctl "$h" "$@" >"$BED_TMP/ctl-$h-${name// /-}.txt" || bed_die "mlinkctl $* failed on $h"
  echo "  mlinkctl $* ($h): ok"
}

echo "== show, show peers, show links, show drops, show maps"
check a '(j["node_id"].endswith("a") and j["mode"] == "static" and j["ml_addresses"] == ["10.88.0.1/16", "fd88::1/64"] and j["peers"] == 1 and j["links"] == 3 and j["uptime_s"] >= 0)' show
check a 'len(j) == 1 and j[0]["ml_address"] == "10.88.0.2" and [l["link"] for l in j[0]["links"]] == ["eth0", "eth1", "eth2"] and all(l["state"] == "up" and l["session"] == "up" and l["echo"] == "active" and l["rtt_us"] > 0 and l["echo_lost"] == 0 and l["role"] == "primary" and l["weight"] == 1 for l in j[0]["links"]) and sum(l["buckets"] for l in j[0]["links"]) == 256' show peers
check a '[l["link"] for l in j] == ["eth0", "eth1", "eth2"] and all(l["carrier"] and l["admin"] == "up" and l["peers"] == ["10.88.0.2"] for l in j)' show links
check a '"no_link" in j or len(j) > 0' show drops
check a 'len(j) == 2 and all(len(e["links"]) == 3 for e in j)' show maps
sed 's/^/    /' "$BED_TMP/ctl-a-show-peers.txt"

echo "== packets counted per link agree with the datapath's maps"
bed_exec a ping -c 20 -i 0.05 -q 10.88.0.2 >/dev/null
python3 - "$(ctl a -j show peers)" "$(ctl a -j show maps)" <<'PY' || bed_die "show peers and show maps disagree"
import json, sys
peers, maps = json.loads(sys.argv[1]), json.loads(sys.argv[2])
agent = {l["link"]: l["packets"] for l in peers[0]["links"]}
dp = {l["link"]: l["packets"] for l in maps[0]["links"]}  # per peer, shared by its entries
print("  per-link packets, agent:", agent, "maps:", dp)
sys.exit(0 if all(abs(agent[k] - dp[k]) <= 5 for k in agent) else 1)
PY

echo "== flow get: 32 live iperf3 flows, each on the link the datapath names"
bed_iperf_server b 5201
bed_iperf a 10.88.0.2 32 6 "$BED_TMP/iperf-flows.json" -p 5201 >/dev/null &
iperf_pid=$!
sleep 2.5 # the rebalancer settles the 32 flows over the links (it may still move one later)
# The captures span every query: whenever the rebalancer moves a flow's bucket, the link flow
# get names at its query carried the flow during the window (a slow build, e.g. ASan, makes
# the 32 queries take seconds).
caps=()
for i in 0 1 2; do
  bed_bg a "cap-eth$i.txt" timeout 30 tcpdump -i "eth$i" -nn -q -l 'tcp and dst port 5201'
  caps+=("$BED_LAST_PID")
done
for i in 0 1 2; do
  for _ in $(seq 100); do grep -q "listening on" "$BED_TMP/cap-eth$i.txt" && break; sleep 0.05; done
  grep -q "listening on" "$BED_TMP/cap-eth$i.txt" || bed_die "tcpdump on eth$i did not start"
done
ports=$(bed_exec a ss -Htn state established dst 10.88.0.2 | awk '{split($3, s, ":"); print s[2]}')
for p in $ports; do
  ctl a -j flow get 10.88.0.1 10.88.0.2 proto tcp sport "$p" dport 5201
done >"$BED_TMP/flows.jsonl"
for pid in "${caps[@]}"; do bed_kill "$pid"; done
wait "$iperf_pid" || bed_die "iperf3 failed"
ctl a flow get 10.88.0.1 10.88.0.2 proto tcp sport "${ports%%$'\n'*}" dport 5201 >"$BED_TMP/ctl-a-flow-get.txt"
if ctl a flow get 10.88.0.1 10.88.0.99 >"$BED_TMP/ctl-a-flow-get-nonpeer.txt"; then
  bed_die "flow get to a non-peer exited 0"
fi
sed 's/^/    /' "$BED_TMP/ctl-a-flow-get.txt"
python3 - "$BED_TMP" <<'PY' || bed_die "flow get named a link the flow did not use"
import collections, json, re, sys
tmp = sys.argv[1]
seen = collections.defaultdict(collections.Counter)  # sport -> link -> packets captured
for i in range(3):
    for line in open(f"{tmp}/cap-eth{i}.txt"):
        m = re.search(r"10\.88\.0\.1\.(\d+) > 10\.88\.0\.2\.5201", line)
        if m:
            seen[int(m.group(1))][f"eth{i}"] += 1
checked = bad = 0
for line in open(f"{tmp}/flows.jsonl"):
    f = json.loads(line)
    got = seen.get(f["sport"])
    if not got or sum(got.values()) < 10:
        continue  # iperf3's control connection: next to no packets in the window
    checked += 1
    if got[f["link"]] < 5 or f["verdict"] != "redirect":  # the named link carried it
        bad += 1
        print(f"  sport {f['sport']}: flow get says {f['link']} ({f['why']}), captured {dict(got)}")
per_link = collections.Counter(json.loads(l)["link"] for l in open(f"{tmp}/flows.jsonl"))
print(f"  {checked} data flows checked against captures on every link, {bad} wrong; per link: {dict(per_link)}")
sys.exit(0 if checked >= 32 and bad == 0 else 1)
PY
grep -q "not a peer" "$BED_TMP/ctl-a-flow-get-nonpeer.txt" || bed_die "flow get to a non-peer: $(cat "$BED_TMP/ctl-a-flow-get-nonpeer.txt")"
if out=$(ctl a flow get 10.88.0.1 fd88::2 2>&1); then bed_die "mixed families accepted"; fi
echo "  mixed families: $out"

# mon_find KEY=VALUE...: the first "recv_ms json" line of the monitor log whose event has
# those fields (string compare); fails if none.
mon_find() {
  python3 - "$BED_TMP/monitor-a.log" "$@" <<'PY'
import json, sys
want = dict(a.split("=", 1) for a in sys.argv[2:])
for line in open(sys.argv[1]):
    ms, _, text = line.partition(" ")
    try:
        e = json.loads(text)
    except ValueError:
        continue
    if all(str(e.get(k)).lower() == v for k, v in want.items()):
        print(line.strip())
        sys.exit(0)
sys.exit(1)
PY
}

echo "== monitor: the event of a link taken down, within 100 ms"
# A reader that stamps every line on arrival (epoch ms), so the delay is what a client sees.
bed_exec a python3 -u -c '
import subprocess, sys, time
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)
for line in p.stdout:
    print(int(time.time() * 1000), line.strip(), flush=True)' \
  "$MLINKCTL" -n "$(ml_node_id a)" -j monitor >"$BED_TMP/monitor-a.log" 2>&1 &
BED_PIDS+=("$!")
sleep 0.5
t0=$(date +%s%3N)
bed_exec b ip link set eth1 down # a's eth1 loses carrier
for ((i = 0; i < 100; i++)); do
  mon_find type=link link=eth1 state=down >/dev/null && break
  sleep 0.02
done
line=$(mon_find type=link link=eth1 state=down peer=10.88.0.2) ||
  { cat "$BED_TMP/monitor-a.log" >&2; bed_die "no link-down event for eth1 within 2 s"; }
got=${line%% *}
echo "  a: $(cut -d' ' -f2- <<<"$line")"
echo "  event received $((got - t0)) ms after the change"
((got - t0 <= 100)) || bed_die "the event came $((got - t0)) ms after the change (limit 100)"
mon_find type=device link=eth1 state=down carrier=false >/dev/null ||
  bed_die "no device event for eth1"
bed_exec b ip link set eth1 up
for ((i = 0; i < 100; i++)); do
  mon_find type=link link=eth1 state=up >/dev/null && break
  sleep 0.05
done
mon_find type=session link=eth1 to=up >/dev/null ||
  { cat "$BED_TMP/monitor-a.log" >&2; bed_die "no session-up event for eth1 after the repair"; }
bed_bg a ctl-a-monitor.txt "$MLINKCTL" -n "$(ml_node_id a)" monitor
mon_pid=$BED_LAST_PID
sleep 0.3
bed_exec b ip link set eth2 down
sleep 0.3
bed_exec b ip link set eth2 up
sleep 1.5
bed_kill "$mon_pid"
grep -q "eth2" "$BED_TMP/ctl-a-monitor.txt" || bed_die "text monitor printed nothing about eth2"
sed 's/^/    /' "$BED_TMP/ctl-a-monitor.txt"

echo "== malformed requests: each gets an error reply; the agent answers on"
# Straight to the socket, as a buggy or hostile client would write them (mlinkctl never
# sends these). {"cmd":"link del","link":1} once ended mlinkd.
python3 - "/run/mlink/$(ml_node_id a).sock" <<'PY' || bed_die "a malformed request was not refused cleanly"
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
f = s.makefile("rwb")
bad = [b'{"cmd":"link del","link":1}', b'{"cmd":"link set","link":"eth0","weight":"x"}',
       b'{"cmd":"link set","link":["eth0"],"drain":true}', b'{"cmd":"flow get","dst":7}',
       b'{"cmd":"flow get","dst":"10.88.0.2","dport":-1}', b'{"cmd":"show","extra":1}',
       b'{"cmd":{}}', b'[1,2]', b'\xff\xfe', b'{"cmd":"link add","link":null}']
for line in bad:
    f.write(line + b"\n"); f.flush()
    r = json.loads(f.readline())
    assert r["ok"] is False and r["error"], (line, r)
    print("  ", line.decode(errors="replace"), "->", r["error"])
f.write(b'{"cmd":"show"}\n'); f.flush()
assert json.loads(f.readline())["ok"] is True
PY
kill -0 "$ML_PID_a" || bed_die "mlinkd on a ended after malformed requests"
for ((i = 0; i < 40; i++)); do # /metrics is rebuilt every second
  m=$(bed_exec a python3 -c 'import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode(), end="")')
  grep -qx 'mlink_control_requests_refused_total 10' <<<"$m" && break
  sleep 0.1
done
((i < 40)) || bed_die "mlink_control_requests_refused_total did not reach 10: $(grep mlink_control <<<"$m")"
check a 'j["links"] == 3' show

echo "== errors"
if out=$(bed_exec a "$MLINKCTL" -n nosuchnode show 2>&1); then bed_die "show for an unknown node succeeded"; fi
grep -q "no running agent" <<<"$out" || bed_die "unclear error: $out"
echo "  unknown node: $out"

ml_stop a
ml_stop b
[ ! -e "/run/mlink/$(ml_node_id a).sock" ] || bed_die "a's control socket was left behind"
echo "PASS: mlinkctl show / monitor"
