#!/usr/bin/env python3
"""Summarise one `iperf3 -J [--get-server-output]` result.

  iperf_summary.py OUT.json                      aggregate + per-stream receiver Mbit/s
  iperf_summary.py --stall-mbps 1 --stall-secs 0.5 OUT.json
                                                 also list stalls: a stream below
                                                 STALL_MBPS for more than STALL_SECS
  iperf_summary.py --value receiver|sender|stalls|retransmits OUT.json
                                                 print one number (for scripts)
  iperf_summary.py --window START END [--window ...] OUT.json
                                                 also the receivers' sum rate over the
                                                 intervals inside [START, END] seconds of
                                                 the test (--value window: the first one)

Receiver-side intervals (the honest view of stalls; the sender counts bytes written into
socket buffers) come from the server's output in normal mode and from the client's in -R mode.
Without --get-server-output the sender's intervals are used and a note says so. Stalls name
streams by the receiver's socket number (the server's differ from the client's).
Exit status 2 when iperf3 reported an error.
"""
import argparse
import json
import sys


def mbps(bps):
    return bps / 1e6


def receiver_intervals(res):
    """Interval list seen by the receiving end, and where it came from."""
    reverse = res.get("start", {}).get("test_start", {}).get("reverse", 0)
    if reverse:
        return res.get("intervals", []), "client"
    srv = res.get("server_output_json")
    if srv and srv.get("intervals"):
        return srv["intervals"], "server"
    return res.get("intervals", []), "sender (no server output)"


def find_stalls(intervals, limit_mbps, min_secs):
    """Runs of consecutive intervals under limit_mbps per stream, longer than min_secs."""
    runs = {}  # socket -> [start, end] of the current run
    stalls = []
    for iv in intervals:
        for s in iv.get("streams", []):
            sock = s["socket"]
            if mbps(s["bits_per_second"]) < limit_mbps:
                cur = runs.setdefault(sock, [s["start"], s["end"]])
                cur[1] = s["end"]
            elif sock in runs:
                stalls.append((sock, *runs.pop(sock)))
    stalls.extend((sock, a, b) for sock, (a, b) in runs.items())
    return sorted((s for s in stalls if s[2] - s[1] > min_secs), key=lambda s: (s[1], s[0]))


def window_mbps(intervals, t0, t1):
    """Sum rate over the receiver intervals lying inside [t0, t1] (s); None if none do."""
    bits = secs = 0.0
    for iv in intervals:
        s = iv.get("sum", {})
        if s.get("start", -1) >= t0 - 1e-3 and s.get("end", 1e9) <= t1 + 1e-3:
            bits += s["bytes"] * 8
            secs += s["seconds"]
    return mbps(bits / secs) if secs > 0 else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--stall-mbps", type=float, default=None)
    ap.add_argument("--stall-secs", type=float, default=0.5)
    ap.add_argument("--window", nargs=2, type=float, action="append", default=[],
                    metavar=("START", "END"))
    ap.add_argument("--value", choices=["receiver", "sender", "stalls", "retransmits", "window"])
    a = ap.parse_args()

    with open(a.json) as f:
        res = json.load(f)
    if res.get("error"):
        print(f"error {res['error']}", file=sys.stderr)
        return 2
    end = res["end"]
    sent = mbps(end["sum_sent"]["bits_per_second"])
    recv = mbps(end["sum_received"]["bits_per_second"])
    ivs, source = receiver_intervals(res)
    stalls = find_stalls(ivs, a.stall_mbps, a.stall_secs) if a.stall_mbps is not None else []

    windows = [(t0, t1, window_mbps(ivs, t0, t1)) for t0, t1 in a.window]
    fmt_w = lambda w: "-" if w is None else f"{w:.1f}"

    if a.value:
        retrans = end["sum_sent"].get("retransmits", 0)
        if a.value == "window" and not windows:
            ap.error("--value window needs --window")
        print({"receiver": f"{recv:.1f}", "sender": f"{sent:.1f}", "stalls": len(stalls),
               "retransmits": retrans,
               "window": fmt_w(windows[0][2]) if windows else ""}[a.value])
        return 0
    print(f"sender_mbps {sent:.1f}")
    print(f"receiver_mbps {recv:.1f}")
    for s in end.get("streams", []):
        r = s["receiver"]
        print(f"stream {r['socket']} receiver_mbps {mbps(r['bits_per_second']):.1f}")
    print(f"retransmits {end['sum_sent'].get('retransmits', 0)}")
    for t0, t1, w in windows:
        print(f"window {t0:.1f}-{t1:.1f} receiver_mbps {fmt_w(w)}")
    if a.stall_mbps is not None:
        print(f"stall_source {source}")
        for sock, t0, t1 in stalls:
            print(f"stall recv_socket={sock} start={t0:.2f} secs={t1 - t0:.2f}")
        print(f"stalls {len(stalls)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
