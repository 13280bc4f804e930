"""The demo's marks and the agents' events, shared by demo_view.py and demo_summary.py.

DIR/phases: one "EPOCH_MS KEY TEXT" line per mark written by ci/demo.sh (KEY: setup,
single, mlink, fault, repair, end). DIR/events-HOST.json: `mlinkctl -j monitor` of HOST's
agent, one JSON object per line, each with "time" (UTC, ms).
"""
import datetime
import json
import os


def read_phases(path):
    """[(epoch_ms, key, text)] in file order; [] before the first mark."""
    try:
        with open(path) as f:
            rows = [line.rstrip("\n").split(" ", 2) for line in f if line.endswith("\n")]
    except FileNotFoundError:
        return []
    return [(int(r[0]), r[1], r[2] if len(r) > 2 else r[1]) for r in rows if len(r) >= 2]


def mark(phases, key):
    """Epoch ms of the first mark KEY, or None."""
    return next((ms for ms, k, _ in phases if k == key), None)


def event_ms(ev):
    t = datetime.datetime.strptime(ev["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return round(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


class Events:
    """Follows each host's event file; works out when each end took the faulty link out
    (after the "fault" mark) and put it back (after the "repair" mark)."""

    def __init__(self, run_dir, hosts, fault_link):
        self.files = {h: os.path.join(run_dir, f"events-{h}.json") for h in hosts}
        self.offset = {h: 0 for h in hosts}
        self.fault_link = fault_link
        self.detect = {h: None for h in hosts}  # ms after the fault
        self.back = {h: None for h in hosts}    # ms after the repair
        self.lines = []

    def _read_new(self, host):
        try:
            with open(self.files[host], "rb") as f:
                f.seek(self.offset[host])
                data = f.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset[host] += len(complete)
        out = []
        for line in complete.decode(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def poll(self, phases):
        """Reads what the agents wrote since the last call; returns the new event lines."""
        start, fault, repair = mark(phases, "mlink"), mark(phases, "fault"), mark(phases, "repair")
        new = []
        for host in self.files:
            for ev in self._read_new(host):
                line = self._take(host, ev, start, fault, repair)
                if line:
                    new.append(line)
        self.lines.extend(new)
        return new

    def _take(self, host, ev, start, fault, repair):
        if ev.get("type") not in ("link", "session") or ":" in ev.get("peer", ":"):
            return None  # the IPv4 entry's events (the traffic's); the IPv6 one's are alike
        ms = event_ms(ev)
        if start is None or ms < start:
            return None
        link = ev.get("link")
        if ev["type"] == "link" and link == self.fault_link:
            if fault and ms >= fault and ev["state"] == "down" and self.detect[host] is None:
                self.detect[host] = ms - fault
            if repair and ms >= repair and ev["state"] == "up" and self.back[host] is None:
                self.back[host] = ms - repair
        if repair and ms >= repair:
            when = f"repair {ms - repair:+5d} ms"
        elif fault and ms >= fault:
            when = f"fault  {ms - fault:+5d} ms"
        else:
            when = f"t={(ms - start) / 1000:.2f} s"
        if ev["type"] == "link":
            what = f"{link} {ev['state']} in the datapath ({ev.get('buckets')} buckets, {ev.get('reason')})"
        else:
            what = f"{link} BFD {ev.get('from')} -> {ev.get('to')} ({ev.get('diag')})"
        return f"{when}  {host}: {what}"

    def figures_lines(self):
        def fmt(figures):
            return ", ".join(f"{h} {'...' if v is None else f'{v} ms'}" for h, v in figures.items())
        return [f"one-way failure taken out of the datapath by  {fmt(self.detect)}  (after the fault)",
                f"back in the datapath after the repair:        {fmt(self.back)}"]
