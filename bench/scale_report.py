#!/usr/bin/env python3
"""Helpers of the scale benchmark (bench/scale.sh, bench/scale_case.sh).

  wait-up     poll `mlinkctl -j show maps` until every peer has every link up; print the time
  count-up    print how many (peer, link) slots are up, and how many peers there are
  wait-slot   poll until one peer's slot on one link is (not) up
  wait-link   poll until no peer's slot on one link is up (carrier loss)
  wait-log    wait for a line of a log matching a regex; print it with its time (µs)
  report      bench_scale lines -> JSON, a Markdown table, a PNG of CPU and RSS vs peers
Every wait is bounded by --timeout and exits 1 when it runs out.
"""
import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time


def maps(a):
    cmd = ["nsenter", f"--net=/run/netns/{a.ns}", a.ctl, "-n", a.node, "-j", "show", "maps"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return json.loads(r.stdout) if r.returncode == 0 else None
    except (ValueError, subprocess.TimeoutExpired):
        return None


def up_counts(peers):
    slots = sum(1 for p in peers for l in p["links"] if l["state"] == "up")
    full = sum(1 for p in peers if p["links"] and all(l["state"] == "up" for l in p["links"]))
    return slots, full


def poll(a, done, what):
    """Calls done(peers) every --interval s until true; returns the wall time (s) it was."""
    end = time.time() + a.timeout
    last = ""
    while time.time() < end:
        peers = maps(a)
        if a.ready:  # the caller may start the fault now: we poll
            open(a.ready, "w").close()
            a.ready = None
        if peers is not None:
            state = done(peers)
            if state is True:
                return time.time()
            if state and state != last and a.verbose:
                print(f"  {what}: {state}", file=sys.stderr)
                last = state
        time.sleep(a.interval)
    print(f"timeout ({a.timeout} s) waiting for {what}", file=sys.stderr)
    sys.exit(1)


def cmd_wait_up(a):
    def done(peers):
        v4 = [p for p in peers if ":" not in p["ml_address"]]
        slots, full = up_counts(v4)
        ok = len(v4) >= a.peers and sum(
            1 for p in v4 if len(p["links"]) == a.links and all(l["state"] == "up" for l in p["links"])
        ) >= a.peers
        return True if ok else f"{len(v4)} peers, {full} with all links up, {slots} slots up"
    t = poll(a, done, f"{a.peers} peers x {a.links} links up")
    print(f"{t - a.since:.3f}" if a.since else f"{t:.6f}")


def cmd_count_up(a):
    peers = maps(a) or []
    slots, full = up_counts(peers)
    print(slots, len(peers), full)


def slot_state(peers, ml, link):
    for p in peers:
        if p["ml_address"] == ml:
            for l in p["links"]:
                if l["link"] == link:
                    return l["state"]
            return "missing"
    return "no-peer"


def cmd_wait_slot(a):
    def done(peers):
        s = slot_state(peers, a.peer, a.link)
        return True if (s == "up") == (a.state == "up") else s
    t = poll(a, done, f"{a.peer} {a.link} {a.state}")
    print(f"{t:.6f}")


def cmd_wait_link(a):
    def done(peers):
        left = sum(1 for p in peers for l in p["links"] if l["link"] == a.link and l["state"] == "up")
        return True if left == 0 else f"{left} still up"
    t = poll(a, done, f"no slot on {a.link} up")
    print(f"{t:.6f}")


def log_time_us(line, ref_us):
    """The agent's log stamp (local HH:MM:SS.mmm) as wall-clock µs, on ref_us's day."""
    m = re.match(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) ", line)
    if not m:
        return None
    ref = dt.datetime.fromtimestamp(ref_us / 1e6)
    t = ref.replace(hour=int(m[1]), minute=int(m[2]), second=int(m[3]), microsecond=int(m[4]) * 1000)
    us = t.timestamp() * 1e6
    if us < ref_us - 43200e6:
        us += 86400e6
    return us


def cmd_wait_log(a):
    rx = re.compile(a.regex)
    end = time.time() + a.timeout
    while time.time() < end:
        try:
            lines = open(a.file, errors="replace").read().splitlines()
        except OSError:
            lines = []
        for line in lines[a.skip:]:
            if rx.search(line):
                us = log_time_us(line, a.ref_us or time.time() * 1e6)
                print(f"{us:.0f}" if us else "-", line)
                return
        time.sleep(a.interval)
    print(f"timeout ({a.timeout} s) waiting for /{a.regex}/ in {a.file}", file=sys.stderr)
    sys.exit(1)


# ---- report --------------------------------------------------------------------------------
COLUMNS = [  # key, heading, target at 1,000 peers (issue 11)
    ("peers", "peers", None),
    ("sessions", "sessions", None),
    ("converge_s", "converge s", "≤ 5"),
    ("cpu_pct", "agent CPU % of a core", "≤ 25"),
    ("rss_mib", "RSS MiB", "≤ 64"),
    ("hwm_mib", "peak RSS MiB", None),
    ("flaps_steady", "BFD downs in CPU window", "0"),
    ("detect_ms", "one-way detect ms", "≤ 100"),
    ("others_down", "other slots down", "0"),
    ("carrier_entries", "carrier: entries", None),
    ("carrier_agent_ms", "carrier: agent ms (wall)", None),
    ("carrier_cpu_ms", "carrier: agent CPU ms", "≤ 10"),
    ("carrier_poll_ms", "carrier: maps ms (polled)", None),
    ("sim_cpu_pct", "sim CPU %", None),
    ("udp_rcvbuf_errors", "agent UDP rcvbuf drops", None),
    ("agent_runq_wait_pct", "agent waiting for CPU %", None),
    ("load1", "load avg", None),
]


def num(v):
    try:
        f = float(v)
        return int(f) if f.is_integer() and "." not in str(v) else f
    except (TypeError, ValueError):
        return v


def cmd_report(a):
    rows = []
    for line in open(a.input):
        if line.startswith("bench_scale "):
            rows.append({k: num(v) for k, v in re.findall(r"(\w+)=(\S+)", line)})
    rows.sort(key=lambda r: r.get("peers", 0))
    meta = {
        "what": "one mlinkd facing N simulated peers x L links (bench/sim), BFD authenticated "
                "with echo, discovery with keys; see bench/scale.sh",
        "host": os.uname().nodename, "kernel": os.uname().release, "cpus": os.cpu_count(),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"meta": meta, "runs": rows}, f, indent=2)
    print(f"\n== scale: one agent, N simulated peers x {rows[0].get('links', '?') if rows else '?'} "
          f"links, BFD {rows[0].get('interval_ms', '?') if rows else '?'} ms x "
          f"{rows[0].get('multiplier', '?') if rows else '?'}")
    print("| " + " | ".join(h for _, h, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "-")) for k, _, _ in COLUMNS) + " |")
    print("| targets at 1,000 | " + " | ".join(t or "" for _, _, t in COLUMNS[1:]) + " |")
    print(f"JSON: {a.json}")
    if a.png:
        plot(rows, a.png)


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (apt-get install python3-matplotlib): no plot", file=sys.stderr)
        return
    pts = [r for r in rows if isinstance(r.get("cpu_pct"), (int, float))]
    if not pts:
        return
    n = [r["peers"] for r in pts]
    fig, ax1 = plt.subplots(figsize=(7, 4.2))
    ax1.plot(n, [r["cpu_pct"] for r in pts], "o-", color="tab:red", label="agent CPU (% of one core)")
    ax1.axhline(25, color="tab:red", ls=":", lw=1, label="CPU target (25 %)")
    ax1.set_xlabel(f"simulated peers (x {pts[0].get('links', '?')} links, BFD "
                   f"{pts[0].get('interval_ms', '?')} ms x {pts[0].get('multiplier', '?')})")
    ax1.set_ylabel("CPU, % of one core", color="tab:red")
    ax1.set_xscale("log")
    ax2 = ax1.twinx()
    ax2.plot(n, [r.get("rss_mib") for r in pts], "s-", color="tab:blue", label="agent RSS (MiB)")
    ax2.plot(n, [r.get("hwm_mib") for r in pts], "s--", color="tab:blue", alpha=0.5,
             label="agent peak RSS (MiB)")
    ax2.axhline(64, color="tab:blue", ls=":", lw=1, label="RSS target (64 MiB)")
    ax2.set_ylabel("MiB", color="tab:blue")
    lines = ax1.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax1.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    for r in pts:
        if not isinstance(r.get("converge_s"), (int, float)):
            ax1.annotate("did not converge", (r["peers"], r["cpu_pct"]), textcoords="offset points",
                         xytext=(-40, -14), fontsize=7, color="tab:red")
    ax1.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    ax1.set_title("mlinkd at scale: CPU and memory against peers")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def maps_args(s):
        s.add_argument("--ns", required=True)
        s.add_argument("--ctl", required=True)
        s.add_argument("--node", required=True)
        s.add_argument("--timeout", type=float, default=30)
        s.add_argument("--interval", type=float, default=0.2)
        s.add_argument("--verbose", action="store_true")
        s.add_argument("--ready", help="create this file after the first poll")

    s = sub.add_parser("wait-up"); maps_args(s)
    s.add_argument("--peers", type=int, required=True)
    s.add_argument("--links", type=int, required=True)
    s.add_argument("--since", type=float, default=0, help="wall-clock s to measure from")
    s.set_defaults(f=cmd_wait_up)
    s = sub.add_parser("count-up"); maps_args(s); s.set_defaults(f=cmd_count_up)
    s = sub.add_parser("wait-slot"); maps_args(s)
    s.add_argument("--peer", required=True)
    s.add_argument("--link", required=True)
    s.add_argument("--state", choices=["up", "down"], required=True)
    s.set_defaults(f=cmd_wait_slot)
    s = sub.add_parser("wait-link"); maps_args(s)
    s.add_argument("--link", required=True)
    s.set_defaults(f=cmd_wait_link)
    s = sub.add_parser("wait-log")
    s.add_argument("--file", required=True)
    s.add_argument("--regex", required=True)
    s.add_argument("--skip", type=int, default=0, help="lines to skip (already there before)")
    s.add_argument("--ref-us", type=float, default=0, help="a wall-clock µs on the log's day")
    s.add_argument("--timeout", type=float, default=30)
    s.add_argument("--interval", type=float, default=0.05)
    s.set_defaults(f=cmd_wait_log)
    s = sub.add_parser("report")
    s.add_argument("--input", required=True)
    s.add_argument("--json", required=True)
    s.add_argument("--png")
    s.set_defaults(f=cmd_report)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
