#!/usr/bin/env python3
"""Read what tests/vm/run.sh collects from the guests (mlinkctl -j output, iperf3 -J).

  figures.py links PEERS_JSON [LINK]   exit 0 when the peer's links (or LINK) are all
                                       up in the datapath with BFD up; prints their states
  figures.py state PEERS_JSON LINK     the datapath state of LINK (up|down|none)
  figures.py bytes PEERS_JSON          "link bytes" per link of the first peer
  figures.py shares BEFORE AFTER MIN   each link's share of the bytes sent between two
                                       `bytes` outputs; exit 1 when one is below MIN
  figures.py event MONITOR_JSONL SINCE_MS LINK STATE
                                       ms from SINCE_MS to the first `link` event of LINK
                                       to STATE (IPv4 or IPv6 entry), '-' when none
  figures.py downs MONITOR_JSONL SINCE_MS
                                       the `link` down and `session` down events from
                                       SINCE_MS on, one a line
  figures.py iperf IPERF_JSON          receiver Gbit/s, and the client's error if any
  figures.py streams IPERF_JSON        "local_port Mbit/s" per stream (receiver side)
"""
import datetime
import json
import sys


def peers(path):
    with open(path) as f:
        return json.load(f)


def epoch_ms(rfc3339):
    t = datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def events(path):
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                pass


def main(cmd, *a):
    if cmd == "links":
        ls = [l for p in peers(a[0]) for l in p["links"] if len(a) < 2 or l["link"] == a[1]]
        print(" ".join(f"{l['link']}={l['state']}/bfd:{l.get('session')}" for l in ls))
        return 0 if ls and all(l["state"] == "up" and l.get("session") == "up" for l in ls) else 1
    if cmd == "state":
        ps = peers(a[0])
        print(next((l["state"] for p in ps[:1] for l in p["links"] if l["link"] == a[1]), "none"))
        return 0
    if cmd == "bytes":
        for l in peers(a[0])[0]["links"]:
            print(l["link"], l["bytes"])
        return 0
    if cmd == "shares":
        def read(p):
            with open(p) as f:
                return {k: int(v) for k, v in (line.split() for line in f if line.strip())}
        b, e = read(a[0]), read(a[1])
        d = {k: e[k] - b.get(k, 0) for k in e}
        total = sum(d.values()) or 1
        low = [k for k in d if d[k] / total < float(a[2])]
        print(" ".join(f"{k}={100 * d[k] / total:.1f}%" for k in sorted(d)))
        return 1 if low else 0
    if cmd == "event":
        since, link, state = int(a[1]), a[2], a[3]
        for e in events(a[0]):
            if e.get("type") == "link" and e.get("link") == link and e.get("state") == state:
                t = epoch_ms(e["time"])
                if t >= since:
                    print(t - since)
                    return 0
        print("-")
        return 0
    if cmd == "downs":
        for e in events(a[0]):
            if "time" not in e or epoch_ms(e["time"]) < int(a[1]):
                continue
            if (e.get("type") == "link" and e.get("state") == "down") or \
               (e.get("type") == "session" and e.get("to") == "down"):
                print(json.dumps(e, sort_keys=True))
        return 0
    if cmd == "first":  # epoch ms of the first down event from SINCE_MS on
        for e in events(a[0]):
            if "time" in e and epoch_ms(e["time"]) >= int(a[1]) and \
               (e.get("state") == "down" or e.get("to") == "down"):
                print(epoch_ms(e["time"]))
                return 0
        print(a[1])
        return 0
    if cmd == "iperf":
        with open(a[0]) as f:
            j = json.load(f)
        end = j.get("end", {}).get("sum_received", {})
        print(f"{end.get('bits_per_second', 0) / 1e9:.2f}", j.get("error", ""))
        return 0 if end and not j.get("error") else 1
    if cmd == "streams":
        with open(a[0]) as f:
            j = json.load(f)
        ports = {s["socket"]: s["local_port"] for s in j["start"]["connected"]}
        for s in j["end"]["streams"]:
            r = s["receiver"]
            print(ports.get(r["socket"], "?"), f"{r['bits_per_second'] / 1e6:.0f}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
