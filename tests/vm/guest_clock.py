#!/usr/bin/env python3
"""Bring this guest's CLOCK_REALTIME to the host's, so that event times taken in two guests
compare (tests/vm/run.sh measures each end's detection time from a fault injected in one).

  guest_clock.py ptp     step to /dev/ptp0 (ptp_kvm: the host's clock, read through KVM);
                         exit 1 when there is none (TCG, or a KVM without it)
  guest_clock.py serve   the guest half of tests/vm/clock_sync.py over ssh's stdin/stdout:
                         a line "t" is answered with this clock in ns, "step NS" moves the
                         clock by NS and is answered "ok"
"""
import os
import sys
import time


def ptp():
    try:
        fd = os.open("/dev/ptp0", os.O_RDONLY)
    except OSError as e:
        print(f"no /dev/ptp0: {e}", file=sys.stderr)
        return 1
    clk = ((~fd) << 3) | 3  # FD_TO_CLOCKID: a dynamic POSIX clock

    def offset_ns():  # host minus guest, from the narrowest of 20 brackets
        best = None
        for _ in range(20):
            a = time.clock_gettime_ns(time.CLOCK_REALTIME)
            p = time.clock_gettime_ns(clk)
            b = time.clock_gettime_ns(time.CLOCK_REALTIME)
            if best is None or b - a < best[0]:
                best = (b - a, p - (a + b) // 2)
        return best[1]

    off = offset_ns()
    time.clock_settime_ns(time.CLOCK_REALTIME, time.clock_gettime_ns(time.CLOCK_REALTIME) + off)
    print(f"ptp_kvm: stepped {off // 1000} us, now {offset_ns() // 1000} us off the host")
    return 0


def serve():
    for line in sys.stdin:
        w = line.split()
        if w == ["t"]:
            print(time.clock_gettime_ns(time.CLOCK_REALTIME), flush=True)
        elif len(w) == 2 and w[0] == "step":
            now = time.clock_gettime_ns(time.CLOCK_REALTIME)
            time.clock_settime_ns(time.CLOCK_REALTIME, now + int(w[1]))
            print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit({"ptp": ptp, "serve": serve}[sys.argv[1]]())
