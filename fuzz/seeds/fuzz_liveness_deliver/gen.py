#!/usr/bin/env python3
"""Writes the seeds of fuzz/fuzz_liveness_deliver.cpp (its header has the format): a config
byte, then datagrams (selector, time step, payload) separated by "\\n--\\n". Control payloads
are plain 24-byte packets: the fuzzer maps Your Discriminator 1..5 to its sessions and signs
them. Run from this directory; ci/test.sh skips .py files."""
import struct

SEP = b"\n--\n"
DOWN, INIT, UP, ADMIN = 1, 2, 3, 0
PEER_DISC = 0x11223344


def pkt(state, your=0, mult=3, tx=30000, rx=30000, echo=30000, poll=False, final=False,
        diag=0, auth=None):
    flags = state << 6 | (0x20 if poll else 0) | (0x10 if final else 0)
    body = struct.pack(">BBBBIIIII", 1 << 5 | diag, flags | (0x04 if auth else 0), mult,
                       52 if auth else 24, PEER_DISC, your, tx, rx, echo)
    if auth:  # (type, key id, seq): the fuzzer signs with exactly these
        atype, key, seq = auth
        body += struct.pack(">BBBBI", atype, 28, key, 0, seq) + bytes(20)
    return body


def sel(peer=0, local=0, echo=False, raw=False, timers=False, unit=1):
    return bytes([peer | local << 2 | echo << 3 | raw << 4 | timers << 5 | unit << 6])


def d(payload=b"", step=29, **kw):
    return (sel(**kw), bytes([step]), payload)


def handshake(peer=0, local=0, your=1, echo=30000):
    return [d(pkt(DOWN, echo=echo), 0, peer=peer, local=local),
            d(pkt(UP, your, echo=echo), peer=peer, local=local, timers=True)]


SEEDS = {
    "up_echo": (0x00, handshake() + [
        d(pkt(UP, 1), 4, timers=True, unit=2),
        d(b"", 0, echo=True),
        d(b"", 29, echo=True, timers=True),
        d(pkt(UP, 1, final=True), 9, timers=True, unit=2),
        d(b"", 0, echo=True),
        d(b"", 29, echo=True, timers=True),
        d(b"", 29, echo=True, timers=True),
        d(pkt(UP, 1), 9, timers=True, unit=3)]),
    "up_timeout": (0x00, handshake() + [d(pkt(UP, 1), 10, timers=True, unit=3),
                                        d(pkt(DOWN, 0), 0)]),
    "two_sockets": (0x00, handshake(0, 1, 3) + handshake(2, 1, 4) +
                    [d(pkt(DOWN), 0, peer=3, local=1), d(pkt(UP, 4), 29, peer=2, local=1)]),
    "unauthenticated": (0x01, handshake() + [d(pkt(UP, 1), 29, timers=True)]),
    "poll_admin_down": (0x00, handshake() + [
        d(pkt(UP, 1, poll=True, tx=50000), 10, timers=True),
        d(pkt(UP, 1, final=True), 10, timers=True),
        d(pkt(ADMIN, 1, diag=7), 10, timers=True),
        d(pkt(DOWN, 1), 29, timers=True)]),
    "remove_readd": (0x00, handshake() + [
        d(bytes([0]), 0, echo=True, raw=True),
        d(pkt(DOWN), 0), d(pkt(UP, 5), 29, timers=True),
        d(bytes([0]), 0, echo=True, raw=True),
        d(bytes([4]), 0, echo=True, raw=True),
        d(pkt(DOWN), 29, timers=True)]),
    "replay": (0x00, [
        d(pkt(DOWN, auth=(5, 1, 100)), 0),
        d(pkt(UP, 1, auth=(5, 1, 101)), 29, timers=True),
        d(pkt(UP, 1, auth=(5, 1, 101)), 29),
        d(pkt(UP, 1, auth=(5, 1, 99)), 29),
        d(pkt(UP, 1, auth=(5, 1, 120)), 29),
        d(pkt(UP, 1, auth=(4, 1, 102)), 29),
        d(pkt(UP, 1, auth=(5, 9, 102)), 29),
        d(pkt(UP, 1, auth=(5, 1, 102)), 29, timers=True),
        d(pkt(UP, 1, auth=(5, 1, 0xffffffff)), 10, timers=True, unit=3)]),
    "two_keys": (0x80, [
        d(pkt(DOWN, auth=(5, 2, 7)), 0),
        d(pkt(UP, 1, auth=(5, 1, 8)), 29, timers=True),
        d(pkt(UP, 1), 29, timers=True)]),
    "echo_unsupported": (0x00, handshake() + [d(pkt(UP, 1), 4, timers=True, unit=3),
                                              d(pkt(UP, 1, echo=0), 8, timers=True, unit=3)]),
    "echo_lost": (0x00, handshake() + [
        d(b"", 4, timers=True, echo=True, unit=2),
        d(b"", 0, echo=True),
        d(bytes([0, 1]), 29, timers=True, echo=True),
        d(bytes([1, 2]), 29, timers=True, echo=True, local=1),
        d(b"\x00", 9, timers=True, echo=True, unit=2),
        d(b"", 29, timers=True, echo=True, unit=2),
        d(pkt(UP, 1), 29, timers=True, unit=2)]),
    # Group echo (the table in memory): the peer sends control packets every 1 s and allows a
    # burst's echo rate (7.5 ms); reflections recorded until the group echo is the session's
    # echo, then none (a burst starts), then the session goes in the burst, and the timers
    # run on (they must not spin).
    "group_echo_burst": (0x00, [
        d(pkt(DOWN, tx=1000000, echo=7500), 0),
        d(pkt(UP, 1, tx=1000000, echo=7500), timers=True)] + [
        d(bytes([0, 0]), 29, echo=True, raw=True, timers=True) for _ in range(6)] + [
        d(pkt(UP, 1, tx=1000000, echo=7500), 29, timers=True),
        d(pkt(UP, 1, tx=1000000, echo=7500), 29, timers=True),
        d(pkt(UP, 1, tx=1000000, echo=7500), 9, timers=True),
        d(bytes([0]), 4, echo=True, raw=True, timers=True),
        d(pkt(DOWN), 29, timers=True, unit=2)]),
    "no_echo_slow": (0x62 | 0x08, handshake(echo=0) + [d(pkt(UP, 1, mult=1), 9, timers=True,
                                                        unit=3)]),
}


def write(name, conf, datagrams):
    parts = [bytes([conf])]
    lines = [f"# fuzz_liveness_deliver seed: {name} (gen.py)", f"{conf:02x}  # config"]
    for i, (s, step, payload) in enumerate(datagrams):
        if i:
            lines.append(SEP.hex() + "  # separator")
        lines.append(f"{s.hex()} {step.hex()} {payload.hex()}".rstrip())
    with open(name + ".hex", "w") as f:
        f.write("\n".join(lines) + "\n")


for name, (conf, ds) in SEEDS.items():
    write(name, conf, ds)
