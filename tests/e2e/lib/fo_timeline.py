#!/usr/bin/env python3
"""Record and summarise how the hosts' maps see their links over time (failover tests).

  fo_timeline.py poll OUT INTERVAL_MS MLINKCTL HOST:NETNS:NODEID...
      every INTERVAL_MS, `mlinkctl -n NODEID -j show maps` inside NETNS for each HOST;
      appends one line per host and sample to OUT:
          <epoch ms> <host> <link>=<up|down>... v6:<link>=... n:<link>=<packets>... all=...
      or  <epoch ms> <host> err    (no map to read: agent not running or not ready)
      The link states are those of the IPv4 peer entry (the traffic's), v6:<link>= those of
      the IPv6 entry, n:<link>= the packets sent over it so far (both entries); all= is every
      slot of every entry. Runs until killed.

  fo_timeline.py report OUT DEV FAULT_MS REPAIR_MS END_MS
      per host: whether DEV was ever down in its map in [FAULT_MS, REPAIR_MS + 1 s] (a
      down that began after the repair is not the fault's), ms from the fault to the first
      down, total ms down and number of down episodes in [FAULT_MS, END_MS], ms from the
      repair to DEV up for good, ms the map was unreadable, and the last sample's DEV state
      in the IPv4 entry, in the IPv6 entry and of all slots. One line per host, key=value.
"""
import json
import subprocess
import sys
import time


def poll(out, interval_ms, mlinkctl, specs):
    hosts = [s.split(":") for s in specs]
    with open(out, "a", buffering=1) as f:
        while True:
            t0 = time.monotonic()
            for name, ns, node in hosts:
                r = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", mlinkctl, "-n", node,
                                    "-j", "show", "maps"], capture_output=True, text=True)
                now = int(time.time() * 1000)
                line = f"{now} {name} err"
                if r.returncode == 0:
                    try:
                        peers = json.loads(r.stdout)
                        v4 = [p for p in peers if ":" not in p["ml_address"]]
                        v6 = [p for p in peers if ":" in p["ml_address"]]
                        links = " ".join(f"{l['link']}={l['state']}" for l in v4[0]["links"])
                        links += "".join(f" v6:{l['link']}={l['state']}" for p in v6[:1]
                                         for l in p["links"])
                        links += "".join(f" n:{l['link']}={l['packets']}" for l in v4[0]["links"])
                        allup = all(l["state"] == "up" for p in peers for l in p["links"])
                        line = f"{now} {name} {links} all={'up' if allup else 'down'}"
                    except (ValueError, IndexError, KeyError):
                        pass
                f.write(line + "\n")
            time.sleep(max(0.0, interval_ms / 1000 - (time.monotonic() - t0)))


def report(out, dev, fault, repair, end):
    samples = {}  # host -> [(t, state)] with state up|down|err
    last_v6, last_all = {}, {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            t, host = int(parts[0]), parts[1]
            st = "err"
            for kv in parts[2:]:
                if kv.startswith(dev + "="):
                    st = kv.split("=", 1)[1]
                elif kv.startswith(f"v6:{dev}="):
                    last_v6[host] = kv.split("=", 1)[1]
                elif kv.startswith("all="):
                    last_all[host] = kv.split("=", 1)[1]
            samples.setdefault(host, []).append((t, st))
    for host in sorted(samples):
        s = [x for x in samples[host] if fault - 1000 <= x[0] <= end]
        first_down = None
        down_ms = err_ms = episodes = 0
        prev = None
        for i, (t, st) in enumerate(s):
            nxt = s[i + 1][0] if i + 1 < len(s) else t
            if t >= fault:
                if st == "down":
                    if first_down is None and t <= repair + 1000:
                        first_down = t - fault
                    down_ms += nxt - t
                    if prev != "down":
                        episodes += 1
                elif st == "err":
                    err_ms += nxt - t
            prev = st
        # Up for good: the first sample after the repair from which DEV stays up.
        up_again = None
        for t, st in s:
            if t < repair:
                continue
            if st == "up":
                if up_again is None:
                    up_again = t - repair
            else:
                up_again = None
        last = s[-1][1] if s else "none"
        seen = "yes" if first_down is not None else "no"
        print(f"{host} seen_down={seen} fault_to_down_ms={first_down if first_down is not None else '-'}"
              f" down_ms={down_ms} down_episodes={episodes}"
              f" repair_to_up_ms={up_again if up_again is not None else '-'}"
              f" unreadable_ms={err_ms} last={last} last_v6={last_v6.get(host, '-')}"
              f" last_all={last_all.get(host, '-')} samples={len(s)}")
    return 0


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "poll":
        poll(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:])
    elif len(sys.argv) == 7 and sys.argv[1] == "report":
        return report(sys.argv[2], sys.argv[3], *(int(x) for x in sys.argv[4:7]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
