# Independent (Python) encoder for the mlink topology protocol v1 test vectors: the C++
# codec is checked against these bytes, so the two implementations keep each other honest.
import hmac, hashlib, ipaddress, struct, os

KEY = bytes(range(32))
OUT = os.path.dirname(os.path.abspath(__file__))  # regenerate: python3 proto/vectors/topo/gen.py
EPOCH = 0x66000000

def mac(b, key=KEY):
    return hmac.new(key, b, hashlib.sha512).digest()[:32]

def tlv(t, v):
    return [("TLV type 0x%04x, length %d" % (t, len(v)), struct.pack(">HH", t, len(v))),
            ("  value", v)]

def host_prefix(t, text, name):
    iface = ipaddress.ip_interface(text)
    v = bytes([iface.network.prefixlen]) + iface.ip.packed
    return [(f"{name} {text}", struct.pack(">HH", t, len(v))), ("  prefix length, address", v)]

def link(weight, backup, subnets):
    v = bytes([weight, 1 if backup else 0])
    parts = []
    for s in subnets:
        n = ipaddress.ip_network(s, strict=False)
        # keep host bits as written (for the bad_address vector)
        addr = ipaddress.ip_interface(s).ip.packed
        parts.append(bytes([4 if n.version == 4 else 6, n.prefixlen]) + addr)
    v += b"".join(parts)
    desc = f"LINK weight {weight}{' backup' if backup else ''}: {', '.join(subnets)}"
    return [(desc, struct.pack(">HH", 0x0010, len(v))),
            ("  weight, flags, then (family, length, address) per subnet", v)]

def header(typ, node=b"alpha", seq=(EPOCH << 32) | 7, key_id=1, version=1, flags=0,
           length=None, magic=b"MLNK"):
    nid = node.ljust(32, b"\0")
    return [("magic \"%s\"" % magic.decode(errors="replace"), magic),
            ("version %d, type %d, flags 0x%04x" % (version, typ, flags),
             struct.pack(">BBH", version, typ, flags)),
            ("total length (patched), key id %d" % key_id, struct.pack(">HH", length or 0, key_id)),
            ("sequence: epoch 0x%08x, counter %d" % (seq >> 32, seq & 0xffffffff),
             struct.pack(">Q", seq)),
            ("sender node id \"%s\", NUL padded to 32" % node.decode(errors="replace"), nid)]

def build(parts, fix_length=True, length_delta=0, sign=True, key=KEY, mutate=None):
    raw = b"".join(p[1] for p in parts)
    total = len(raw) + 32
    if fix_length:
        hdr = parts[2][1]
        parts[2] = (parts[2][0].replace("(patched)", str(total + length_delta)),
                    struct.pack(">HH", total + length_delta, struct.unpack(">HH", hdr)[1]))
    raw = b"".join(p[1] for p in parts)
    m = mac(raw, key) if sign else bytes(32)
    if mutate:
        parts, m = mutate(parts, m)
    parts.append(("MAC: HMAC-SHA-512-256 (libsodium crypto_auth) over all of the above", m))
    return parts

def write(name, comment, parts):
    with open(os.path.join(OUT, name + ".hex"), "w") as f:
        for line in comment.strip().splitlines():
            f.write("# " + line + "\n")
        for desc, b in parts:
            f.write("# " + desc + "\n")
            for i in range(0, len(b), 16):
                f.write(b[i:i + 16].hex(" ") + "\n")

def hello_body(extra=()):
    p = []
    p += host_prefix(1, "10.88.0.1/16", "ML_ADDR")
    p += host_prefix(1, "fd88::1/64", "ML_ADDR")
    p += host_prefix(2, "192.168.10.1/24", "LINK_ADDR")
    p += host_prefix(2, "fd00:10::1/64", "LINK_ADDR")
    p += [("HOLD_TIME 3000 ms", struct.pack(">HHI", 4, 4, 3000))]
    p += [("SEEN \"bravo\"", struct.pack(">HH", 3, 5) + b"bravo")]
    for e in extra:
        p += e
    return p

def links_body(first="192.168.10.0/24"):
    return (link(2, False, [first, "fd00:10::/64"]) + link(1, True, ["192.168.20.0/24"]) +
            link(1, False, ["fd00:30::/64"]))

write("hello", "HELLO from alpha on link 192.168.10.0/24 (IPv4 + IPv6). Key id 1 (see README).",
      build(header(1) + hello_body()))
write("hello_answer",
      "Unicast HELLO from alpha to bravo on 192.168.10.0/24: flags ANSWER (0x0001, alpha has not\n"
      "seen bravo name it yet) and SEEN naming only bravo, the receiver.",
      build(header(1, seq=(EPOCH << 32) | 9, flags=1) + hello_body()))
write("hello_seen_page",
      "Multicast HELLO from alpha whose SEEN is a full page: 16 node ids (n00..n15), the most\n"
      "a v1 receiver accepts. Successive HELLOs name the next 16 heard on the link.",
      build(header(1, seq=(EPOCH << 32) | 10) +
            [x for x in hello_body() if not x[0].startswith("SEEN")] +
            [("SEEN \"n%02d\"" % i, struct.pack(">HH", 3, 3) + b"n%02d" % i) for i in range(16)]))
write("links", "LINKS from alpha: three links, one backup, IPv4 and IPv6 subnets.",
      build(header(2, seq=(EPOCH << 32) | 8) + links_body()))

# ---- rejects: each has exactly one defect and is signed unless the defect is the MAC
def flip_mac(parts, m):
    return parts, bytes([m[0] ^ 1]) + m[1:]

h = header(1) + hello_body()
full = b"".join(p[1] for p in build(list(h)))
write("reject_truncated", "The first 60 bytes of hello.hex: shorter than header + MAC (84).",
      [("hello.hex, cut", full[:60])])
write("reject_bad_magic", "hello.hex with magic \"MLNX\".",
      build(header(1, magic=b"MLNX") + hello_body()))
write("reject_bad_version", "hello.hex with version 2.", build(header(1, version=2) + hello_body()))
pad = 1233 - (len(full))
write("reject_oversized",
      "hello.hex plus an unknown non-critical TLV 0x7fff, 1233 bytes in all: one more than the\n"
      "1232-byte limit (1280 IPv6 minimum MTU - 40 IPv6 header - 8 UDP header).",
      build(header(1) + hello_body(extra=[tlv(0x7fff, bytes(pad - 4))])))
write("reject_bad_length", "hello.hex with the total length field one more than the datagram.",
      build(header(1) + hello_body(), length_delta=1))
write("reject_unknown_key", "hello.hex signed with key id 1's key but naming key id 2.",
      build(header(1, key_id=2) + hello_body()))
write("reject_bad_mac", "hello.hex with the first MAC byte flipped.",
      build(header(1) + hello_body(), mutate=flip_mac))
write("reject_replay",
      "A valid HELLO (it decodes) with counter 6, one below hello.hex's 7. A ReplayGuard that\n"
      "accepted hello.hex accepts it once (inside the 64-packet window); the next copy is a\n"
      "replay. The unit test feeds hello.hex, this, this: accept, accept, reject.",
      build(header(1, seq=(EPOCH << 32) | 6) + hello_body()))
write("reject_unknown_type", "Type 3 (reserved: LINKS_REQUEST), empty body.", build(header(3)))
write("reject_bad_node_id", "hello.hex from node id \"al pha\" (space not allowed).",
      build(header(1, node=b"al pha") + hello_body()))
write("reject_bad_tlv", "hello.hex plus a SEEN TLV whose length (200) runs past the body.",
      build(header(1) + hello_body(extra=[[("SEEN with length 200, 5 bytes follow",
                                            struct.pack(">HH", 3, 200) + b"delta")]])))
write("reject_unknown_critical_tlv",
      "hello.hex plus TLV 0x8042 (must-understand bit set, unknown in v1).",
      build(header(1) + hello_body(extra=[tlv(0x8042, b"\x01\x02")])))
write("reject_bad_address", "links.hex with 192.168.10.1/24 as a subnet: host bits set.",
      build(header(2, seq=(EPOCH << 32) | 8) + links_body(first="192.168.10.1/24")))
print("ok", len(full))
