#!/usr/bin/env python3
"""clock_sync.py CMD...: step a guest's clock to this host's over a pipe, NTP-style.

CMD runs `guest_clock.py serve` in the guest (ssh). 20 round trips: each gives the offset
(host minus guest) with an error of half its round trip; the narrowest is applied. Repeated
(at most 5 rounds) until what is left is within that error or 1 ms: under TCG the first step
of a just-booted guest lands ~20 ms off (measured), the second within a few ms. Prints
"stepped S ms, residual R ms +- E ms". For guests with no /dev/ptp0 (TCG): the error is that
of ssh's round trip through qemu's user network.
"""
import subprocess
import sys
import time


def measure(p, n):
    best = None
    for _ in range(n):
        t1 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        p.stdin.write("t\n")
        p.stdin.flush()
        g = int(p.stdout.readline())
        t2 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        if best is None or t2 - t1 < best[1]:
            best = ((t1 + t2) // 2 - g, t2 - t1)
    return best[0], best[1] // 2


def main(cmd):
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    off, err = measure(p, 20)
    total = 0
    for _ in range(5):
        if abs(off) <= max(err, 1_000_000) and total:
            break
        p.stdin.write(f"step {off}\n")
        p.stdin.flush()
        if p.stdout.readline().strip() != "ok":
            print("the guest did not step its clock", file=sys.stderr)
            return 1
        total += off
        off, err = measure(p, 20)
    res = off
    off = total
    p.stdin.close()
    p.wait(timeout=10)
    print(f"stepped {off / 1e6:.1f} ms, residual {res / 1e6:.1f} ms +- {err / 1e6:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
