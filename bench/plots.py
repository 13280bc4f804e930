#!/usr/bin/env python3
"""JSON results and PNG plots of the failover and goodput benchmarks (docs/BENCHMARKS.md).

  plots.py series IPERF.json --fault-s F --repair-s R --summary LINE --out CASE.json
      one failover case (bench/failover_case.sh): the receivers' aggregate Mbit/s and the
      number of streams under --stall-mbps per iperf3 interval, with the case's
      `bench_failover k=v ...` LINE; needs no matplotlib
  plots.py failover --cases DIR --json OUT.json [--png OUT.png] [meta options]
      every CASE.json in DIR -> one JSON (bench/failover.sh), then its plot
  plots.py goodput --input RAW --json OUT.json [--png OUT.png] [meta options]
      the `bench_tput case= parallel= mbps= runs= ...` lines of RAW -> JSON (bench/run.sh)
  plots.py render failover|goodput IN.json OUT.png
      the plot alone, from a JSON written above (tests/bench/test_plots.sh)

Plots: aggregate Mbit/s against time through the fault, one line per system, with the
streams stalled below it; goodput per system and flow count as a ratio of the links' limit.
"""
import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e", "lib"))
import iperf_summary  # noqa: E402  (receiver-side intervals)

SYSTEMS = {  # case name -> label and colour, in plotting order
    "single_link": ("single link", "tab:gray"),
    "ecmp": ("kernel ECMP (L4 hash)", "tab:orange"),
    "mptcp": ("MPTCP (a subflow per link)", "tab:green"),
    "mlink": ("mlink", "tab:blue"),
    "mlink_sockq64k": ("mlink, socket_queue_limit 64 KiB", "tab:red"),
    "mlink_tsq64k": ("mlink, sender TSQ 64 KiB", "tab:cyan"),
    "mlink_gso16k": ("mlink, ml0 GSO 16 KiB", "tab:brown"),
    "mlink_loose": ("mlink, rx_mode loose", "tab:olive"),
    "mlink_flowlet": ("mlink, flowlet mode", "tab:purple"),
    "mlink_flowlet_nolimit": ("mlink, flowlet, socket_queue_limit 0", "tab:pink"),
}
FAULTS = {
    "oneway": "one-way silent failure of eth1",
    "admin_down_sender": "eth1 admin down on the sender",
    "admin_down_receiver": "eth1 admin down on the receiver",
    "loss30": "30 % random loss on eth1",
    "flap": "eth1 flapping every 0.5 s",
}


def num(v):
    try:
        f = float(v)
        return int(f) if f.is_integer() and "." not in v else f
    except (TypeError, ValueError):
        return v


def num_or(v, default=0.0):
    return v if isinstance(v, (int, float)) else default


def kv(line):
    return {k: num(v) for k, v in re.findall(r"(\w+)=(\S+)", line)}


def meta(a):
    """Where and when: the figures move with the machine's load, so the load goes with them."""
    try:
        commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    m = {"command": a.command, "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
         "host": os.uname().nodename, "kernel": os.uname().release, "cpus": os.cpu_count(),
         "commit": commit or "?", "load_end": [round(x, 2) for x in os.getloadavg()]}
    if a.load_start:
        m["load_start"] = [float(x) for x in a.load_start.split()[:3]]
    for k in ("links", "rate_mbps", "seconds", "repeats"):
        if getattr(a, k, None) is not None:
            m[k] = getattr(a, k)
    return m


def write_json(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    print(f"JSON: {path}", file=sys.stderr)


# ---- data ----------------------------------------------------------------------------------

def cmd_series(a):
    with open(a.iperf) as f:
        res = json.load(f)
    if res.get("error"):
        sys.exit(f"iperf3 error in {a.iperf}: {res['error']}")
    ivs, source = iperf_summary.receiver_intervals(res)
    t, mbps, stalled = [], [], []
    for iv in ivs:
        s = iv["sum"]
        t.append(round(s["end"], 3))
        mbps.append(round(s["bits_per_second"] / 1e6, 2))
        stalled.append(sum(1 for st in iv.get("streams", [])
                           if st["bits_per_second"] / 1e6 < a.stall_mbps))
    case = kv(a.summary)
    case.update({"fault_s": a.fault_s, "repair_s": a.repair_s, "stall_mbps": a.stall_mbps,
                 "streams": len(ivs[0].get("streams", [])) if ivs else 0,
                 "intervals_from": source, "t_end_s": t, "mbps": mbps, "stalled_streams": stalled})
    write_json(a.out, case)


def cmd_failover(a):
    runs = []
    for name in sorted(os.listdir(a.cases)):
        if name.endswith(".json"):
            with open(os.path.join(a.cases, name)) as f:
                runs.append(json.load(f))
    if not runs:
        sys.exit(f"no failover case results in {a.cases}")
    doc = {"meta": meta(a), "runs": runs}
    write_json(a.json, doc)
    if a.png:
        render_failover(doc, a.png)


def cmd_goodput(a):
    last = {}  # (case, parallel) -> the last line for it: RAW may hold earlier runs
    with open(a.input) as f:
        for line in f:
            if line.startswith("bench_tput "):
                r = kv(line)
                last[(r["case"], r["parallel"])] = r
    if not last:
        sys.exit(f"no bench_tput lines in {a.input}")
    split = lambda v: [num(x) for x in str(v).split(",") if x not in ("", "NA")]
    results = [{"case": c, "parallel": p, "median_mbps": r["mbps"], "runs_mbps": split(r["runs"]),
                "links_used": split(r.get("links_used", "")),
                "retransmits": split(r.get("retransmits", "")),
                "reorder": split(r.get("reorder", "")), "dsack": split(r.get("dsack", "")),
                "undo": split(r.get("undo", "")), "host_queue": split(r.get("host_queue", "")),
                "qdisc_drops": split(r.get("qdisc_drops", "")),
                "rx_drops": split(r.get("rx_drops", "")),
                "cpu_s_per_gbit": split(r.get("cpu_s_per_gbit", ""))}
               for (c, p), r in last.items()]
    doc = {"meta": meta(a), "results": results}
    write_json(a.json, doc)
    if a.png:
        render_goodput(doc, a.png)


# ---- plots ---------------------------------------------------------------------------------

def pyplot():
    try:
        import matplotlib
    except ImportError:
        sys.exit(f"{sys.executable}: no matplotlib (apt-get install python3-matplotlib)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def footer(fig, m):
    l0, l1 = m.get("load_start"), m.get("load_end")
    load = f", load avg {l0[0]:.1f} at the start, {l1[0]:.1f} at the end" if l0 and l1 else \
        f", load avg {l1[0]:.1f}" if l1 else ""
    text = f"{m.get('date', '?')[:10]}, {m.get('cpus', '?')} CPUs, kernel {m.get('kernel', '?')}, " \
           f"commit {m.get('commit', '?')}" + load + \
           f"\n{m.get('command', '')}"
    fig.text(0.01, 0.005, text, fontsize=7, color="0.4", ha="left", va="bottom")


def save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}", file=sys.stderr)


def render_failover(doc, path, fault="oneway"):
    plt = pyplot()
    runs = [r for r in doc["runs"] if r.get("fault") == fault] or doc["runs"]
    fault = runs[0].get("fault", "?")
    fig, (top, low) = plt.subplots(2, 1, sharex=True, figsize=(8, 6),
                                   gridspec_kw={"height_ratios": [3, 1.3]})
    m = doc.get("meta", {})
    links, rate = m.get("links"), m.get("rate_mbps")
    if links and rate:
        for n in (links, links - 1):
            top.axhline(n * rate, color="0.6", ls=":", lw=1)
            top.text(0.2, n * rate, f"{n} × {rate:g} Mbit/s shaped", fontsize=7, color="0.4",
                     va="bottom")
    notes, r0 = [], None
    for mode in sorted({r.get("mode") for r in runs}, key=lambda s: s != "mlink"):
        label, colour = SYSTEMS.get(mode, (mode, None))
        mine = [r for r in runs if r.get("mode") == mode]
        # One run per system, the one with the median aggregate during the fault: with
        # several runs drawn the lines hide each other. The others' figures go in the note.
        ranked = sorted(range(len(mine)), key=lambda i: (num_or(mine[i].get("during")), i))
        pick = ranked[(len(ranked) - 1) // 2]
        r = mine[pick]
        lab = f"{label}" + (f" (run {pick + 1} of {len(mine)}: median aggregate during the fault)"
                            if len(mine) > 1 else "")
        z = 3 if mode == "mlink" else 2  # mlink on top where the lines coincide
        top.step(r["t_end_s"], r["mbps"], where="pre", color=colour, label=lab, lw=1.8, zorder=z)
        low.step(r["t_end_s"], r["stalled_streams"], where="pre", color=colour, lw=1.8, zorder=z)
        det = [max(x["detect_a_ms"], x["detect_b_ms"]) for x in mine
               if isinstance(x.get("detect_a_ms"), int) and isinstance(x.get("detect_b_ms"), int)]
        if det:
            span = f"{min(det)}" if min(det) == max(det) else f"{min(det)}–{max(det)}"
            note = f"{label}: eth1 out on both ends {span} ms after the fault"
        elif mode == "mptcp":
            note = f"{label}: no link state; its scheduler sends again on the other subflows"
        else:
            note = f"{label}: never takes eth1 out"
        stalls = ", ".join(str(x.get("stalled", "?")) for x in mine)
        notes.append(f"{note}; streams stalled > 1 s: {stalls}")
        r0 = r0 or r
    for ax in (top, low):
        ax.axvspan(r0["fault_s"], r0["repair_s"], color="tab:red", alpha=0.07)
        ax.axvline(r0["fault_s"], color="tab:red", lw=1.2,
                   label=f"fault at {r0['fault_s']:.1f} s" if ax is top else None)
        ax.axvline(r0["repair_s"], color="tab:green", lw=1.2, ls="--",
                   label=f"repair at {r0['repair_s']:.1f} s" if ax is top else None)
    top.set_ylabel("aggregate goodput, Mbit/s")
    top.set_ylim(0, (links * rate * 1.12) if links and rate else None)
    top.legend(loc="lower left", fontsize=8, framealpha=0.9)
    iv = r0["t_end_s"][1] - r0["t_end_s"][0] if len(r0["t_end_s"]) > 1 else 0
    top.set_title(f"Throughput through a {FAULTS.get(fault, fault)}\n"
                  f"iperf3 -P{r0.get('streams', '?')}, receiver side, {iv:.1f} s intervals",
                  fontsize=11)
    # Per system, every run's figures under the plot (the lines show one run each).
    fig.text(0.01, 0.05, "\n".join(notes), fontsize=8, ha="left", va="bottom")
    low.set_ylabel(f"streams\n< {r0.get('stall_mbps', 1):g} Mbit/s")
    low.yaxis.get_major_locator().set_params(integer=True)
    low.set_ylim(-0.3, max(r0.get("streams", 8), 1) + 0.3)
    low.set_xlabel("time since iperf3 start, s")
    low.set_xlim(0, max(r0["t_end_s"]) if r0["t_end_s"] else None)
    footer(fig, m)
    fig.tight_layout(rect=(0, 0.05 + 0.022 * len(notes), 1, 1))
    save(fig, path)


def render_goodput(doc, path):
    plt = pyplot()
    res = doc["results"]
    m = doc.get("meta", {})
    links, rate = m.get("links", 3), m.get("rate_mbps")
    pars = sorted({r["parallel"] for r in res})
    cases = [c for c in SYSTEMS if any(r["case"] == c for r in res)]
    cases += sorted({r["case"] for r in res} - set(cases))
    by = {(r["case"], r["parallel"]): r for r in res}

    def limit(p):  # the baseline of the same run: links × one link's goodput at this -P
        s = by.get(("single_link", p))
        if s and isinstance(s["median_mbps"], (int, float)) and s["median_mbps"] > 0:
            return links * s["median_mbps"]
        return links * rate if rate else None

    if any(limit(p) is None for p in pars):
        sys.exit("goodput plot: no single_link result and no rate_mbps for the limit")
    basis = "single link" if all(("single_link", p) in by for p in pars) else f"{rate:g} Mbit/s"
    # Wider with more systems; the legend goes under the axes in rows of four.
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(cases) + 2), 5.6))
    width = 0.8 / len(cases)
    for j, c in enumerate(cases):
        label, colour = SYSTEMS.get(c, (c, None))
        xs, ys = [], []
        for i, p in enumerate(pars):
            r = by.get((c, p))
            if not r or not isinstance(r["median_mbps"], (int, float)):
                continue
            x = i + (j - (len(cases) - 1) / 2) * width
            y = r["median_mbps"] / limit(p)
            xs.append(x); ys.append(y)
            ax.text(x, 0.02, f"{r['median_mbps']:.0f}", ha="center", va="bottom",
                    fontsize=8 if len(cases) <= 5 else 6.5, color="white", fontweight="bold",
                    rotation=0 if len(cases) <= 5 else 90)
            rs = [v / limit(p) for v in r["runs_mbps"]]
            # spread across the bar, so that equal runs stay countable
            dx = [width * 0.6 * (k / max(len(rs) - 1, 1) - 0.5) for k in range(len(rs))]
            ax.plot([x + d for d in dx], rs, "o", ms=3.5, mfc="none", color="black", alpha=0.6,
                    label="each run" if (j, i) == (0, 0) else None)
        ax.bar(xs, ys, width * 0.92, color=colour, label=label)
    ax.axhline(1.0, color="black", lw=0.8, ls=":")
    ax.set_xticks(range(len(pars)), [f"-P{p}\n({p} flow{'s' if p != 1 else ''})" for p in pars])
    ax.set_xlabel("iperf3 parallel streams")
    ax.set_ylabel(f"goodput / ({links} × {basis}, same run)")
    ax.set_ylim(0, 1.18)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, ncol=4, frameon=False)
    secs, reps = m.get("seconds", float("nan")), m.get("repeats", "?")
    ax.set_title(f"Goodput over {links} links × tbf {rate:g} Mbit/s by system and flow count\n"
                 f"bars: median of {reps} runs of {secs:g} s (Mbit/s on the bar), circles: each run",
                 fontsize=11)
    footer(fig, m)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save(fig, path)


def cmd_render(a):
    with open(a.json) as f:
        doc = json.load(f)
    (render_failover if a.kind == "failover" else render_goodput)(doc, a.png)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def meta_args(s):
        s.add_argument("--json", required=True)
        s.add_argument("--png")
        s.add_argument("--command", default="", help="the command that made the results")
        s.add_argument("--load-start", default="", help="/proc/loadavg when the bench started")
        s.add_argument("--links", type=int)
        s.add_argument("--rate-mbps", type=float)
        s.add_argument("--seconds", type=float)
        s.add_argument("--repeats", type=int)

    s = sub.add_parser("series")
    s.add_argument("iperf")
    s.add_argument("--fault-s", type=float, required=True)
    s.add_argument("--repair-s", type=float, required=True)
    s.add_argument("--stall-mbps", type=float, default=1.0)
    s.add_argument("--summary", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(f=cmd_series)
    s = sub.add_parser("failover"); meta_args(s)
    s.add_argument("--cases", required=True)
    s.set_defaults(f=cmd_failover)
    s = sub.add_parser("goodput"); meta_args(s)
    s.add_argument("--input", required=True)
    s.set_defaults(f=cmd_goodput)
    s = sub.add_parser("render")
    s.add_argument("kind", choices=["failover", "goodput"])
    s.add_argument("json")
    s.add_argument("png")
    s.set_defaults(f=cmd_render)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
