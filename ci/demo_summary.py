#!/usr/bin/env python3
"""The summary of ci/demo.sh, from the files of its run directory.

  demo_summary.py --run-dir DIR [--fault-link eth1] [--hosts a,b]

DIR holds single.json and mlink.json (iperf3 -J --get-server-output, the second with
-i 0.1), phases and events-HOST.json (see demo_events.py) and peers-a.json (host a's
`mlinkctl -j show peers` after the transfer). Lines are "label: value" so tests can read them.
"""
import argparse
import json
import os
import sys

from demo_events import Events, mark, read_phases

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e", "lib"))
import iperf_summary  # noqa: E402  (receiver intervals, stalls, windows)

STALL_MBPS = 1.0  # a stream below this over an interval is stalled


def load(path):
    with open(path) as f:
        res = json.load(f)
    if res.get("error"):
        raise SystemExit(f"demo_summary: {path}: iperf3 error: {res['error']}")
    return res


def fmt(v, unit="Mbit/s"):
    return "-" if v is None else f"{v:.1f} {unit}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--fault-link", default="eth1")
    ap.add_argument("--hosts", default="a,b")
    a = ap.parse_args()
    d = a.run_dir

    single = load(os.path.join(d, "single.json"))
    ml = load(os.path.join(d, "mlink.json"))
    phases = read_phases(os.path.join(d, "phases"))
    hosts = a.hosts.split(",")
    events = Events(d, hosts, a.fault_link)
    events.poll(phases)

    single_mbps = single["end"]["sum_received"]["bits_per_second"] / 1e6
    ivs, _ = iperf_summary.receiver_intervals(ml)
    start = mark(phases, "mlink")
    t_fault = (mark(phases, "fault") - start) / 1000
    t_repair = (mark(phases, "repair") - start) / 1000
    t_end = ml["end"]["sum_received"]["seconds"]
    # The intervals count from when iperf3's streams were connected, up to ~1 s after the
    # "mlink" mark on a busy machine: each window keeps a second away from the marks.
    before = iperf_summary.window_mbps(ivs, 1.0, t_fault - 1.0)
    during = iperf_summary.window_mbps(ivs, t_fault + 1.0, t_repair - 1.0)
    after = iperf_summary.window_mbps(ivs, t_repair + 3.0, t_end)
    whole = ml["end"]["sum_received"]["bits_per_second"] / 1e6
    stalls = iperf_summary.find_stalls(ivs, STALL_MBPS, 0.0)
    longest = max((t1 - t0 for _s, t0, t1 in stalls), default=0.0)
    with open(os.path.join(d, "peers-a.json")) as f:
        link_bytes = {l["link"]: l["bytes"] for l in json.load(f)[0]["links"]}

    ratio = f"{before / single_mbps:.2f} x the single link" if before and single_mbps else "-"
    print("== summary")
    print(f"single link (eth0, iperf3 -P8): {fmt(single_mbps)}")
    print(f"mlink over 3 links, before the failure: {fmt(before)} ({ratio})")
    print(f"mlink during the failure (2 links): {fmt(during)}; after the repair: {fmt(after)}; "
          f"whole transfer {fmt(whole)}")
    print("bytes sent per link by a's datapath: "
          + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sorted(link_bytes.items())))
    for h in hosts:
        det, back = events.detect[h], events.back[h]
        print(f"one-way failure of {a.fault_link} detected by {h}: "
              + ("not seen" if det is None else f"{det} ms after the fault")
              + "; back after the repair: " + ("not seen" if back is None else f"{back} ms"))
    print(f"longest stall of a stream (below {STALL_MBPS:g} Mbit/s, 0.1 s intervals): {longest:.2f} s")
    print("kernel ECMP in the same failure (docs/BENCHMARKS.md): never detected, "
          "streams stalled 6.6 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
