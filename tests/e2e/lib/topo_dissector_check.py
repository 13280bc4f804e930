"""Checks for dist/wireshark/mlink.lua, used by tests/e2e/test_dissector.sh.

  dump VECTOR_DIR OUT.txt OUT.names   the vectors (*.hex) as text2pcap input, one packet each
  fuzz VECTOR_DIR OUT.txt SEED        every cut and 300 byte flips of the valid vectors
  vectors PDML NAMES                  each vector decoded as expected (fields, expert info)
  fuzz-check PDML COUNT               COUNT packets, every one decoded as mlink.topo, no Lua error
  capture PDML A_ID B_ID EPOCH_MIN EPOCH_MAX   a real capture on link eth0 between a and b

Both PDMLs come from tshark with the key file set (-o mlink.topo.key_file:F), so MACs are
verified.

PDML is `tshark -T pdml` output. Exit status 1 with the reasons on stderr when a check fails.
"""
import os
import random
import re
import sys
import xml.etree.ElementTree as ET

ERROR = 0x00800000  # _ws.expert.severity of PI_ERROR


def vector_bytes(path):
    text = "".join(re.sub(r"#.*", "", line) for line in open(path))
    return bytes.fromhex("".join(text.split()))


def hexdump(out, payload):
    for i in range(0, max(len(payload), 1), 16):
        out.write("%06x %s\n" % (i, " ".join("%02x" % c for c in payload[i:i + 16])))


def vectors(vdir):
    return [(n[:-4], vector_bytes(os.path.join(vdir, n)))
            for n in sorted(os.listdir(vdir)) if n.endswith(".hex")]


class Packet:
    """One PDML packet: its fields as (name, show, value) in tree order, and its protocols."""

    def __init__(self, elem):
        self.protos = [p.get("name") for p in elem.iter("proto")]
        self.fields = [(f.get("name"), f.get("show") or "", f.get("value") or "")
                       for f in elem.iter("field")]

    def shows(self, name):
        return [s for n, s, _ in self.fields if n == name]

    def experts(self, prefix="mlink.topo."):
        """Names of the expert items this dissector added (mlink.topo.<reason>)."""
        names = []
        for e in self._expert_groups():
            names += [n for n, _, _ in e if n.startswith(prefix)]
        return names

    def errors(self):
        """Problems any check rejects: Lua errors, malformed, expert errors (with messages)."""
        out = []
        for n, s, _ in self.fields:
            if n == "_ws.lua.error" or s.startswith("Lua Error"):
                out.append("Lua error: " + s)
        if "_ws.malformed" in self.protos:
            out.append("malformed")
        for e in self._expert_groups():
            sev = [int(s) for n, s, _ in e if n == "_ws.expert.severity"]
            msg = [s for n, s, _ in e if n == "_ws.expert.message"]
            if sev and sev[0] >= ERROR:
                out.append("expert error: " + (msg[0] if msg else "?"))
        return out

    def _expert_groups(self):
        groups, cur = [], None
        for n, s, v in self.fields:
            if n == "_ws.expert":
                cur = []
                groups.append(cur)
            elif cur is not None and (n.startswith("_ws.expert.") or n.startswith("mlink.topo.")
                                      or n == "_ws.lua.error"):
                cur.append((n, s, v))
                if n == "_ws.expert.group":
                    cur = None
        return groups


def packets(pdml):
    return [Packet(p) for p in ET.parse(pdml).getroot().iter("packet")]


# What each reject vector must show (the dissector's expert item for its one defect).
REJECT_EXPERT = {
    "reject_truncated": "mlink.topo.truncated",
    "reject_bad_magic": "mlink.topo.bad_magic",
    "reject_bad_version": "mlink.topo.unknown_version",
    "reject_oversized": "mlink.topo.oversized",
    "reject_bad_length": "mlink.topo.bad_length",
    "reject_unknown_type": "mlink.topo.unknown_type",
    "reject_bad_node_id": "mlink.topo.bad_value",
    "reject_bad_tlv": "mlink.topo.bad_tlv",
    "reject_unknown_critical_tlv": "mlink.topo.unknown_critical_tlv",
    "reject_bad_address": "mlink.topo.bad_value",
    # With the vectors' key file (key id 1 only).
    "reject_unknown_key": "mlink.topo.unknown_key",
    "reject_bad_mac": "mlink.topo.bad_mac",
    # Only a receiver that saw the packets before can tell: nothing to flag.
    "reject_replay": None,
}

HELLO_FIELDS = {
    "mlink.topo.magic": ["MLNK"], "mlink.topo.version": ["1"], "mlink.topo.type": ["1"],
    "mlink.topo.key_id": ["1"], "mlink.topo.node_id": ["alpha"],
    "mlink.topo.ml_addr": ["10.88.0.1/16", "fd88::1/64"],
    "mlink.topo.link_addr": ["192.168.10.1/24", "fd00:10::1/64"],
    "mlink.topo.hold_time": ["3000"], "mlink.topo.seen": ["bravo"],
}
VALID_FIELDS = {
    "hello": dict(HELLO_FIELDS, **{"mlink.topo.seq": ["0x6600000000000007"],
                                   "mlink.topo.flags.answer": ["0"]}),
    "hello_answer": dict(HELLO_FIELDS, **{"mlink.topo.flags.answer": ["1"],
                                          "mlink.topo.seq.counter": ["9"]}),
    "hello_seen_page": {"mlink.topo.seen": ["n%02d" % i for i in range(16)]},
    "links": {"mlink.topo.type": ["2"], "mlink.topo.node_id": ["alpha"],
              "mlink.topo.link.weight": ["2", "1", "1"],
              "mlink.topo.link.flags.backup": ["0", "1", "0"],
              "mlink.topo.link.subnet": ["192.168.10.0/24", "fd00:10::/64", "192.168.20.0/24",
                                         "fd00:30::/64"]},
}


def check_vectors(pdml, names_file):
    names = open(names_file).read().split()
    pkts = packets(pdml)
    bad = []
    if len(pkts) != len(names):
        return ["%d packets decoded, %d vectors" % (len(pkts), len(names))]
    for name, p in zip(names, pkts):
        if "mlink.topo" not in p.protos:
            bad.append(f"{name}: not decoded as mlink.topo")
            continue
        if any(e.startswith("Lua error") for e in p.errors()):
            bad.append(f"{name}: {p.errors()}")
        got = p.experts()
        if not name.startswith("reject_"):
            if got or p.errors():
                bad.append(f"{name}: valid, but shows {got} {p.errors()}")
            if p.shows("mlink.topo.mac.valid") != ["1"]:
                bad.append(f"{name}: MAC not verified ({p.shows('mlink.topo.mac.valid')})")
            for field, want in VALID_FIELDS.get(name, {}).items():
                if p.shows(field) != want:
                    bad.append(f"{name}: {field} = {p.shows(field)}, want {want}")
        elif name not in REJECT_EXPERT:
            bad.append(f"{name}: no expectation in {__file__} (add it)")
        elif REJECT_EXPERT[name] is None:
            if got:
                bad.append(f"{name}: shows {got}, but only a key holder can reject it")
        elif REJECT_EXPERT[name] not in got:
            bad.append(f"{name}: shows {got}, want {REJECT_EXPERT[name]}")
        print(f"  {name}: {', '.join(got) or 'no expert info'}")
    return bad


def fuzz(vdir, out_path, seed):
    rnd = random.Random(seed)
    valid = [b for n, b in vectors(vdir) if not n.startswith("reject_")]
    n = 0
    with open(out_path, "w") as out:
        for b in valid:
            for cut in range(1, len(b)):
                hexdump(out, b[:cut])
                n += 1
        for _ in range(300):
            b = bytearray(rnd.choice(valid))
            for _ in range(rnd.randint(1, 4)):
                b[rnd.randrange(4, len(b))] = rnd.randrange(256)  # keep the magic: decode deep
            hexdump(out, bytes(b))
            n += 1
    print(f"  {n} fuzzed packets")


def check_fuzz(pdml, count):
    pkts = packets(pdml)
    bad = [] if len(pkts) == count else [f"{len(pkts)} packets decoded, {count} made"]
    for i, p in enumerate(pkts, 1):
        if "mlink.topo" not in p.protos:
            bad.append(f"packet {i}: not decoded as mlink.topo")
        bad += [f"packet {i}: {e}" for e in p.errors() if e.startswith("Lua error")]
    print(f"  {len(pkts)} packets decoded, {len(bad)} problems")
    return bad[:20]


def check_capture(pdml, a, b, epoch_min, epoch_max):
    pkts = [p for p in packets(pdml)]
    bad, seen_fields = [], set()
    hosts = {a: "1", b: "2"}  # node id -> host number (bed_link addresses)
    kinds = set()
    for i, p in enumerate(pkts, 1):
        if "mlink.topo" not in p.protos:
            bad.append(f"packet {i}: not decoded as mlink.topo")
            continue
        bad += [f"packet {i}: {e}" for e in p.errors()]
        bad += [f"packet {i}: expert {e}" for e in p.experts()]
        seen_fields |= {n for n, _, _ in p.fields if n.startswith("mlink.topo")}
        node, typ = p.shows("mlink.topo.node_id"), p.shows("mlink.topo.type")
        if len(node) != 1 or node[0] not in hosts:
            bad.append(f"packet {i}: node id {node}, want {a} or {b}")
            continue
        me, other = hosts[node[0]], b if node[0] == a else a
        epoch = int(p.shows("mlink.topo.seq")[0], 16) >> 32
        if not epoch_min <= epoch <= epoch_max:
            bad.append(f"packet {i}: epoch {epoch} not in [{epoch_min}, {epoch_max}]")
        if p.shows("mlink.topo.key_id") != ["1"] or p.shows("mlink.topo.version") != ["1"]:
            bad.append(f"packet {i}: key id or version not 1")
        if p.shows("mlink.topo.mac.valid") != ["1"]:
            bad.append(f"packet {i}: MAC not verified with the run's key")
        v6 = "ipv6" in p.protos
        if typ == ["1"]:
            want = {"mlink.topo.ml_addr": [f"10.88.0.{me}/16", f"fd88::{me}/64"],
                    "mlink.topo.hold_time": ["3500"]}
            for field, w in want.items():
                if p.shows(field) != w:
                    bad.append(f"packet {i}: {field} {p.shows(field)}, want {w}")
            if not {f"10.0.0.{me}/24", f"fd00::{me}/64"} <= set(p.shows("mlink.topo.link_addr")):
                bad.append(f"packet {i}: link addresses {p.shows('mlink.topo.link_addr')}")
            if set(p.shows("mlink.topo.seen")) - {other}:
                bad.append(f"packet {i}: seen {p.shows('mlink.topo.seen')}")
            if p.shows("mlink.topo.seen"):
                kinds.add(("HELLO naming the other", node[0], v6))
        elif typ == ["2"]:
            # a's eth0 has weight 2, its eth1 is a backup (the test's config); b's are default.
            w = [["2", "1"], ["0", "1"]] if node[0] == a else [["1", "1"], ["0", "0"]]
            got = [p.shows("mlink.topo.link.weight"), p.shows("mlink.topo.link.flags.backup")]
            subnets = p.shows("mlink.topo.link.subnet")
            if got != w or subnets != ["10.0.0.0/24", "fd00::/64", "10.1.0.0/24", "fd00:0:0:1::/64"]:
                bad.append(f"packet {i}: LINKS weights, backups {got}, subnets {subnets}")
            kinds.add(("LINKS", node[0], v6))
        else:
            bad.append(f"packet {i}: type {typ}")
    print(f"  {len(pkts)} packets: " + ", ".join(
        sorted(f"{k[0]} from {k[1]} over IPv{6 if k[2] else 4}" for k in kinds)))
    for host in (a, b):
        for v6 in (False, True):
            for kind in ("HELLO naming the other", "LINKS"):
                if kind == "LINKS" and v6:
                    continue  # LINKS go to both groups, but one family is enough
                if (kind, host, v6) not in kinds:
                    bad.append(f"no {kind} from {host} over IPv{6 if v6 else 4}")
    # Every field this dissector declares for HELLO and LINKS, except the ones only bad
    # or future packets carry.
    lua = open(os.path.join(os.path.dirname(__file__), "../../../dist/wireshark/mlink.lua")).read()
    declared = set(re.findall(r'ProtoField\.\w+\("(mlink\.topo\.[\w.]+)"', lua))
    optional = {"mlink.topo.tlv.value", "mlink.topo.body"}
    missing = sorted(declared - optional - seen_fields)
    if missing:
        bad.append(f"fields never present: {missing}")
    print(f"  {len(declared - optional)} fields, each present at least once: "
          f"{'no' if missing else 'yes'}")
    return bad[:20]


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    bad = []
    if cmd == "dump":
        with open(args[1], "w") as out, open(args[2], "w") as names:
            for name, b in vectors(args[0]):
                hexdump(out, b)
                names.write(name + "\n")
    elif cmd == "fuzz":
        fuzz(args[0], args[1], int(args[2]))
    elif cmd == "vectors":
        bad = check_vectors(*args)
    elif cmd == "fuzz-check":
        bad = check_fuzz(args[0], int(args[1]))
    elif cmd == "capture":
        bad = check_capture(args[0], args[1], args[2], int(args[3]), int(args[4]))
    else:
        sys.exit(f"unknown command {cmd}")
    for b in bad:
        print("FAIL: " + b, file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
