#!/usr/bin/env python3
"""Live view of ci/demo.sh: per-link throughput and state on both hosts.

  demo_view.py --run-dir DIR --mlinkctl PATH --host a:NETNS:NODE --host b:NETNS:NODE
               [--links eth0,eth1,eth2] [--fault-link eth1] [--period 0.5] [--rate-mbps 200]

Every PERIOD it reads each host's link counters (ip -s -j link) and its agent's view
(mlinkctl -j show peers), and the agents' events (DIR/events-HOST.json, written by
mlinkctl -j monitor). DIR/phases holds the script's marks, one "EPOCH_MS KEY TEXT" line
each; the view ends after the frame that follows the "end" mark. On a terminal the frame
is redrawn in place (ANSI); otherwise each frame is printed as one line, with the phases
and events as lines of their own. Standard library only.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from demo_events import Events, read_phases


def run_json(cmd):
    """JSON output of cmd, or None when it fails (an agent not answering yet, say)."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=2, check=True).stdout
        return json.loads(out)
    except (subprocess.SubprocessError, ValueError, OSError):
        return None


class Host:
    def __init__(self, spec, mlinkctl, links):
        self.name, self.netns, self.node = spec.split(":")
        self.mlinkctl, self.links = mlinkctl, links
        self.prev = None  # (time, {dev: (tx_bytes, rx_bytes)})
        self.rates = {}   # dev -> (tx Mbit/s, rx Mbit/s)
        self.state = {}   # dev -> (datapath state, BFD session, rtt_us)

    def nsenter(self, *cmd):
        return ["nsenter", f"--net=/run/netns/{self.netns}", *cmd]

    def sample(self):
        now = time.monotonic()
        devs = run_json(self.nsenter("ip", "-s", "-j", "link", "show")) or []
        cur = {d["ifname"]: (d["stats64"]["tx"]["bytes"], d["stats64"]["rx"]["bytes"])
               for d in devs if d.get("ifname") in self.links and "stats64" in d}
        if self.prev and now > self.prev[0]:
            dt = now - self.prev[0]
            self.rates = {dev: tuple(max(0, c - p) * 8 / dt / 1e6 for c, p in zip(v, self.prev[1][dev]))
                          for dev, v in cur.items() if dev in self.prev[1]}
        self.prev = (now, cur)
        peers = run_json(self.nsenter(self.mlinkctl, "-n", self.node, "-j", "show", "peers"))
        self.state = {}
        if peers:
            for link in peers[0].get("links", []):
                self.state[link["link"]] = (link.get("state", "?"), link.get("session", "-"),
                                            link.get("rtt_us"))


def bar(mbps, full, width=20):
    n = min(width, round(width * mbps / full)) if full > 0 else 0
    return "#" * n + "." * (width - n)


def phase_title(phases):
    return phases[-1][2] if phases else "starting"


def frame_tty(t, phases, hosts, events, rate_mbps):
    lines = [f"mlink demo   t={t:5.1f} s   {phase_title(phases)}", ""]
    for h in hosts:
        lines.append(f"host {h.name}    datapath  BFD     tx Mbit/s  rx Mbit/s   {'':20}  echo rtt")
        total_tx = total_rx = 0.0
        for dev in h.links:
            tx, rx = h.rates.get(dev, (0.0, 0.0))
            total_tx, total_rx = total_tx + tx, total_rx + rx
            st, sess, rtt = h.state.get(dev, ("?", "?", None))
            rtt_s = f"{rtt} us" if rtt else "-"
            mark = "<- " if st != "up" else "   "
            lines.append(f"  {dev:7} {mark}{st:7} {sess or '-':6} {tx:9.1f}  {rx:9.1f}   "
                         f"{bar(max(tx, rx), rate_mbps)}  {rtt_s}")
        lines.append(f"  {'total':7}    {'':7} {'':6} {total_tx:9.1f}  {total_rx:9.1f}")
        lines.append("")
    lines.extend(events.figures_lines())
    lines.append("events:")
    lines.extend("  " + e for e in events.lines[-6:])
    return lines


def frame_line(t, hosts):
    parts = []
    for h in hosts:
        links = []
        for dev in h.links:
            tx, rx = h.rates.get(dev, (0.0, 0.0))
            links.append(f"{dev} {h.state.get(dev, ('?',))[0]} {max(tx, rx):5.1f}")
        parts.append(f"{h.name}: " + ", ".join(links))
    return f"[{t:5.1f} s] Mbit/s " + " | ".join(parts)


class Screen:
    """Redraws a frame in place on a terminal (cursor up, overwrite, clear the rest)."""

    def __init__(self):
        self.height = 0
        sys.stdout.write("\033[?25l")  # hide the cursor while drawing

    def draw(self, lines):
        cols = shutil.get_terminal_size((100, 40)).columns
        out = [f"\033[{self.height}F" if self.height else ""]
        out.extend(line[: cols - 1] + "\033[K\n" for line in lines)
        out.append("\033[J")
        sys.stdout.write("".join(out))
        sys.stdout.flush()
        self.height = len(lines)

    @staticmethod
    def restore():
        sys.stdout.write("\033[?25h")
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--mlinkctl", required=True)
    ap.add_argument("--host", action="append", required=True)
    ap.add_argument("--links", default="eth0,eth1,eth2")
    ap.add_argument("--fault-link", default="eth1")
    ap.add_argument("--period", type=float, default=0.5)
    ap.add_argument("--rate-mbps", type=float, default=200)
    a = ap.parse_args()

    links = a.links.split(",")
    hosts = [Host(spec, a.mlinkctl, links) for spec in a.host]
    events = Events(a.run_dir, [h.name for h in hosts], a.fault_link)
    tty = sys.stdout.isatty()
    screen = Screen() if tty else None

    def stop(_sig, _frm):
        if screen:
            screen.restore()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    t0, printed_phases = time.time(), 0
    nxt = time.monotonic()
    while True:
        for h in hosts:
            h.sample()
        # The marks just before the events: an event after a mark is written after it (BFD
        # takes tens of ms), so it is never read before its mark.
        phases = read_phases(os.path.join(a.run_dir, "phases"))
        if phases:
            t0 = phases[0][0] / 1000
        new_events = events.poll(phases)
        t = time.time() - t0
        if tty:
            screen.draw(frame_tty(t, phases, hosts, events, a.rate_mbps))
        else:
            for ms, _key, text in phases[printed_phases:]:
                print(f"== t={ms / 1000 - t0:5.1f} s: {text}")
            printed_phases = len(phases)
            for line in new_events:
                print(f"   event: {line}")
            print(frame_line(t, hosts), flush=True)
        if phases and phases[-1][1] == "end":
            break
        nxt += a.period
        time.sleep(max(0.0, nxt - time.monotonic()))
    if screen:
        screen.restore()
    return 0


if __name__ == "__main__":
    sys.exit(main())
