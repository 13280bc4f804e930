#include "proto/topo/codec.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <utility>

#include "proto/common/bytes.h"

namespace mlink::topo {
namespace {

using proto::ByteReader;
using proto::ByteWriter;

constexpr std::array<uint8_t, 4> kMagic = {'M', 'L', 'N', 'K'};
constexpr uint8_t kLinkBackup = 0x01;  // LINK TLV flags
constexpr uint8_t kLinkDrain = 0x02;
constexpr uint8_t kFamily4 = 4;  // address family codes on the wire (not AF_*)
constexpr uint8_t kFamily6 = 6;

constexpr size_t kOffLength = 8;  // of the total length field in the header (docs/PROTOCOL.md)

// libsodium must be initialised before use; once per process is enough.
void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) {
    std::fputs("mlink: sodium_init() failed\n", stderr);
    std::abort();
  }
}

std::string hex16(uint16_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04x", v);
  return buf;
}

Reject reject(Reason r, std::string detail) {
  return Reject{r, std::move(detail)};
}

// ---- field rules shared by encode and decode ---------------------------------

bool valid_node_id(std::string_view s) {
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  };
  return !s.empty() && s.size() <= kNodeIdSize && std::all_of(s.begin(), s.end(), ok);
}

// The fixed header field: the id, then NUL padding to 32 bytes. Anything
// after the first NUL must be NUL too, so one id has one encoding.
std::optional<std::string> parse_node_id_field(std::span<const uint8_t> field) {
  auto nul = std::find(field.begin(), field.end(), uint8_t{0});
  if (std::any_of(nul, field.end(), [](uint8_t b) { return b != 0; })) return std::nullopt;
  std::string id(field.begin(), nul);
  if (!valid_node_id(id)) return std::nullopt;
  return id;
}

size_t max_len(const IpAddr& a) {
  return a.is_v4() ? 32 : 128;
}

// A unicast address a peer can send to: not unspecified, loopback,
// multicast or the IPv4 limited broadcast.
bool usable_unicast(const IpAddr& a) {
  const auto& b = a.bytes;
  if (a.is_v4()) {
    uint32_t v = ByteReader(b).u32();
    return v != 0 && b[0] != 127 && (b[0] & 0xf0) != 0xe0 && v != 0xffffffff;
  }
  static constexpr std::array<uint8_t, 16> kZero{};
  std::array<uint8_t, 16> loopback{};
  loopback[15] = 1;
  return b != kZero && b != loopback && b[0] != 0xff;
}

IpAddr make_addr(std::span<const uint8_t> raw) {
  IpAddr a;
  a.family = raw.size() == 4 ? AF_INET : AF_INET6;
  std::copy(raw.begin(), raw.end(), a.bytes.begin());
  return a;
}

std::span<const uint8_t> addr_bytes(const IpAddr& a) {
  return std::span<const uint8_t>(a.bytes.data(), a.size());
}

// ---- decode: TLV bodies ---------------------------------------------------------

using TlvResult = std::optional<Reject>;  // nullopt: accepted

// MlAddr / LinkAddr value: prefix length (u8), then 4 or 16 address bytes.
TlvResult parse_host_prefix(std::span<const uint8_t> v, const char* what, Prefix& out) {
  if (v.size() != 1 + 4 && v.size() != 1 + 16)
    return reject(Reason::BadTlv, std::string(what) + ": length " + std::to_string(v.size()) +
                                      ", expected 5 or 17");
  out.len = v[0];
  out.addr = make_addr(v.subspan(1));
  if (out.len == 0 || out.len > max_len(out.addr))
    return reject(Reason::BadAddress, std::string(what) + ": prefix length " +
                                          std::to_string(out.len) + " out of range");
  if (!usable_unicast(out.addr))
    return reject(Reason::BadAddress,
                  std::string(what) + ": " + out.addr.str() + " is not unicast");
  return std::nullopt;
}

// LINK value: weight (u8), flags (u8), then subnets as family (u8), length
// (u8) and 4 or 16 address bytes.
TlvResult parse_link(std::span<const uint8_t> v, LinkInfo& out) {
  ByteReader r(v);
  out.weight = r.u8();
  uint8_t flags = r.u8();
  if (!r.ok()) return reject(Reason::BadTlv, "LINK: shorter than 2");
  if (out.weight == 0) return reject(Reason::BadTlv, "LINK: weight 0");
  out.backup = flags & kLinkBackup;
  out.drain = flags & kLinkDrain;
  while (r.left() > 0) {
    uint8_t family = r.u8();
    uint8_t len = r.u8();
    if (!r.ok()) return reject(Reason::BadTlv, "LINK: truncated subnet");
    if (family != kFamily4 && family != kFamily6)
      return reject(Reason::BadAddress, "LINK: family " + std::to_string(family));
    std::span<const uint8_t> raw = r.bytes(family == kFamily4 ? 4 : 16);
    if (!r.ok()) return reject(Reason::BadTlv, "LINK: truncated subnet");
    if (out.subnets.size() == kMaxSubnets)
      return reject(Reason::BadTlv, "LINK: more than " + std::to_string(kMaxSubnets) + " subnets");
    Prefix p{make_addr(raw), len};
    if (len == 0 || len > max_len(p.addr))
      return reject(Reason::BadAddress, "LINK: prefix length " + std::to_string(len));
    if (p.network() != p)
      return reject(Reason::BadAddress, "LINK: " + p.str() + " has host bits set");
    out.subnets.push_back(p);
  }
  if (out.subnets.empty()) return reject(Reason::BadTlv, "LINK: no subnet");
  return std::nullopt;
}

// One decoded TLV of a HELLO. The value has been framed already.
TlvResult hello_tlv(uint16_t type, std::span<const uint8_t> v, Hello& h, bool& have_hold,
                    bool& known) {
  known = true;
  switch (static_cast<TlvType>(type)) {
    case TlvType::MlAddr:
    case TlvType::LinkAddr: {
      bool ml = type == static_cast<uint16_t>(TlvType::MlAddr);
      auto& list = ml ? h.ml_addrs : h.link_addrs;
      if (list.size() == (ml ? kMaxMlAddrs : kMaxLinkAddrs))
        return reject(Reason::BadTlv, ml ? "too many ML_ADDR" : "too many LINK_ADDR");
      Prefix p;
      if (auto e = parse_host_prefix(v, ml ? "ML_ADDR" : "LINK_ADDR", p)) return e;
      list.push_back(p);
      return std::nullopt;
    }
    case TlvType::Seen: {
      if (v.empty() || v.size() > kNodeIdSize)
        return reject(Reason::BadTlv, "SEEN: length " + std::to_string(v.size()));
      std::string id(v.begin(), v.end());
      if (!valid_node_id(id)) return reject(Reason::BadNodeId, "SEEN: invalid node id");
      if (h.seen.size() == kMaxSeen) return reject(Reason::BadTlv, "too many SEEN");
      h.seen.push_back(std::move(id));
      return std::nullopt;
    }
    case TlvType::HoldTime: {
      if (v.size() != 4)
        return reject(Reason::BadTlv, "HOLD_TIME: length " + std::to_string(v.size()));
      h.hold_ms = ByteReader(v).u32();
      if (have_hold) return reject(Reason::BadTlv, "HOLD_TIME twice");
      if (h.hold_ms == 0) return reject(Reason::BadTlv, "HOLD_TIME: 0");
      have_hold = true;
      return std::nullopt;
    }
    default:
      known = false;
      return std::nullopt;
  }
}

TlvResult links_tlv(uint16_t type, std::span<const uint8_t> v, Links& l, bool& known) {
  known = type == static_cast<uint16_t>(TlvType::Link);
  if (!known) return std::nullopt;
  if (l.links.size() == kMaxLinks) return reject(Reason::BadTlv, "too many LINK");
  LinkInfo info;
  if (auto e = parse_link(v, info)) return e;
  l.links.push_back(std::move(info));
  return std::nullopt;
}

// Rules about the TLV set as a whole, checked after the walk.
TlvResult finish(const Hello& h, bool have_hold) {
  if (h.ml_addrs.empty()) return reject(Reason::BadTlv, "HELLO without ML_ADDR");
  if (h.link_addrs.empty()) return reject(Reason::BadTlv, "HELLO without LINK_ADDR");
  if (!have_hold) return reject(Reason::BadTlv, "HELLO without HOLD_TIME");
  return std::nullopt;
}

TlvResult finish(const Links& l) {
  if (l.links.empty()) return reject(Reason::BadTlv, "LINKS without LINK");
  // A subnet names one link in the canonical order; two links cannot share it.
  std::set<Prefix> seen;
  for (const auto& link : l.links)
    for (const auto& s : link.subnets)
      if (!seen.insert(s).second)
        return reject(Reason::BadAddress, "LINKS: subnet " + s.str() + " listed twice");
  return std::nullopt;
}

// Walks the TLVs of the body; unknown types are skipped unless critical.
template <class OnTlv>
TlvResult walk_tlvs(std::span<const uint8_t> body, OnTlv on_tlv) {
  ByteReader r(body);
  size_t count = 0;
  while (r.left() > 0) {
    uint16_t type = r.u16();
    uint16_t len = r.u16();
    if (!r.ok()) return reject(Reason::BadTlv, "truncated TLV header");
    std::span<const uint8_t> value = r.bytes(len);
    if (!r.ok())
      return reject(Reason::BadTlv, "TLV " + hex16(type) + ": length " + std::to_string(len) +
                                        " runs past the body");
    if (++count > kMaxTlvs) return reject(Reason::BadTlv, "more than 64 TLVs");
    bool known = false;
    if (auto e = on_tlv(type, value, known)) return e;
    if (!known && (type & kTlvCritical))
      return reject(Reason::UnknownCriticalTlv, "TLV " + hex16(type));
  }
  return std::nullopt;
}

std::variant<Hello, Links, Reject> decode_body(uint8_t type, std::span<const uint8_t> body) {
  if (type == static_cast<uint8_t>(MsgType::Hello)) {
    Hello h;
    bool have_hold = false;
    auto e = walk_tlvs(body, [&](uint16_t t, std::span<const uint8_t> v, bool& known) {
      return hello_tlv(t, v, h, have_hold, known);
    });
    if (!e) e = finish(h, have_hold);
    if (e) return *e;
    return h;
  }
  Links l;
  auto e = walk_tlvs(body, [&](uint16_t t, std::span<const uint8_t> v, bool& known) {
    return links_tlv(t, v, l, known);
  });
  if (!e) e = finish(l);
  if (e) return *e;
  return l;
}

// ---- encode -----------------------------------------------------------------------

void put_tlv_header(ByteWriter& w, TlvType type, size_t len) {
  w.u16(static_cast<uint16_t>(type));
  w.u16(static_cast<uint16_t>(len));
}

void put_host_prefix(ByteWriter& w, TlvType type, const Prefix& p) {
  put_tlv_header(w, type, 1 + p.addr.size());
  w.u8(p.len);
  w.bytes(addr_bytes(p.addr));
}

void put_body(ByteWriter& w, const Hello& h) {
  for (const auto& p : h.ml_addrs) put_host_prefix(w, TlvType::MlAddr, p);
  for (const auto& p : h.link_addrs) put_host_prefix(w, TlvType::LinkAddr, p);
  put_tlv_header(w, TlvType::HoldTime, 4);
  w.u32(h.hold_ms);
  for (const auto& id : h.seen) {
    put_tlv_header(w, TlvType::Seen, id.size());
    w.bytes(id);
  }
}

void put_body(ByteWriter& w, const Links& l) {
  for (const auto& link : l.links) {
    size_t len = 2;
    for (const auto& s : link.subnets) len += 2 + s.addr.size();
    put_tlv_header(w, TlvType::Link, len);
    w.u8(link.weight);
    w.u8(static_cast<uint8_t>((link.backup ? kLinkBackup : 0) | (link.drain ? kLinkDrain : 0)));
    for (const auto& s : link.subnets) {
      w.u8(s.addr.is_v4() ? kFamily4 : kFamily6);
      w.u8(s.len);
      w.bytes(addr_bytes(s.addr));
    }
  }
}

// Limits that keep the encoding well-formed (u16 lengths, the fixed id
// field); everything else is left to the decode self-check.
std::optional<std::string> check_encodable(const Message& m) {
  if (!valid_node_id(m.node_id)) return "node id \"" + m.node_id + "\" is not [A-Za-z0-9_-]{1,32}";
  if (const auto* h = std::get_if<Hello>(&m.body)) {
    if (h->ml_addrs.size() > kMaxMlAddrs || h->link_addrs.size() > kMaxLinkAddrs ||
        h->seen.size() > kMaxSeen)
      return "HELLO exceeds the address or seen-list limits";
    for (const auto& id : h->seen)
      if (!valid_node_id(id)) return "seen node id \"" + id + "\" is invalid";
  } else {
    const auto& l = std::get<Links>(m.body);
    if (l.links.size() > kMaxLinks) return "more than 16 links";
    for (const auto& link : l.links)
      if (link.subnets.size() > kMaxSubnets) return "a link with more than 3 subnets";
  }
  return std::nullopt;
}

}  // namespace

std::string_view reason_name(Reason r) {
  switch (r) {
#define MLINK_TOPO_NAME(name, text) \
  case Reason::name:                \
    return text;
    MLINK_TOPO_REJECTS(MLINK_TOPO_NAME)
#undef MLINK_TOPO_NAME
  }
  return "?";
}

Result<std::vector<uint8_t>> encode(const Message& m, const Key& key) {
  ensure_sodium();
  if (auto err = check_encodable(m)) return Error{"topo encode: " + *err};
  ByteWriter w;
  w.bytes(kMagic);
  w.u8(kVersion);
  w.u8(static_cast<uint8_t>(m.body.index() == 0 ? MsgType::Hello : MsgType::Links));
  w.u16(m.flags);
  w.u16(0);  // total length, patched below
  w.u16(key.id);
  w.u64(m.seq);
  std::array<uint8_t, kNodeIdSize> id{};
  std::copy(m.node_id.begin(), m.node_id.end(), id.begin());
  w.bytes(id);
  std::visit([&](const auto& body) { put_body(w, body); }, m.body);
  if (w.size() + kMacSize > kMaxPacket)
    return Error{"topo encode: " + std::to_string(w.size() + kMacSize) + " bytes, more than " +
                 std::to_string(kMaxPacket)};
  w.put_u16_at(kOffLength, static_cast<uint16_t>(w.size() + kMacSize));
  std::array<uint8_t, kMacSize> mac;
  crypto_auth(mac.data(), w.view().data(), w.size(), key.bytes.data());
  w.bytes(mac);
  // Whatever we send must pass our own receiver (e.g. addresses).
  auto back = decode(w.view(), KeyRing{{key.id, key.bytes}});
  if (const auto* r = std::get_if<Reject>(&back))
    return Error{"topo encode: would be rejected: " + std::string(reason_name(r->reason)) + ": " +
                 r->detail};
  return std::move(w).take();
}

std::variant<Message, Reject> decode(std::span<const uint8_t> p, const KeyRing& keys) {
  ensure_sodium();
  if (p.size() < kMinPacket)
    return reject(Reason::Truncated,
                  std::to_string(p.size()) + " bytes, need " + std::to_string(kMinPacket));
  // The fixed header (docs/PROTOCOL.md, "Header"); kMinPacket bytes are there.
  ByteReader hdr(p);
  std::span<const uint8_t> magic = hdr.bytes(kMagic.size());
  uint8_t version = hdr.u8();
  uint8_t type = hdr.u8();
  uint16_t flags = hdr.u16();
  uint16_t length = hdr.u16();
  KeyId key_id = hdr.u16();
  uint64_t seq = hdr.u64();
  std::span<const uint8_t> node_id = hdr.bytes(kNodeIdSize);

  if (!std::equal(kMagic.begin(), kMagic.end(), magic.begin())) return reject(Reason::BadMagic, "");
  if (version != kVersion) return reject(Reason::BadVersion, "version " + std::to_string(version));
  if (p.size() > kMaxPacket) return reject(Reason::Oversized, std::to_string(p.size()) + " bytes");
  if (length != p.size())
    return reject(Reason::BadLength, "length field " + std::to_string(length) + ", datagram " +
                                         std::to_string(p.size()));
  auto key = keys.find(key_id);
  if (key == keys.end()) return reject(Reason::UnknownKey, "key id " + std::to_string(key_id));
  size_t signed_len = p.size() - kMacSize;
  if (crypto_auth_verify(p.data() + signed_len, p.data(), signed_len, key->second.data()) != 0)
    return reject(Reason::BadMac, "key id " + std::to_string(key_id));

  // Authenticated from here on.
  if (type != static_cast<uint8_t>(MsgType::Hello) && type != static_cast<uint8_t>(MsgType::Links))
    return reject(Reason::UnknownType, "type " + std::to_string(type));
  Message m;
  m.flags = flags;
  m.key_id = key_id;
  m.seq = seq;
  auto id = parse_node_id_field(node_id);
  if (!id) return reject(Reason::BadNodeId, "sender node id");
  m.node_id = std::move(*id);
  auto body = decode_body(type, p.subspan(kHeaderSize, signed_len - kHeaderSize));
  if (auto* r = std::get_if<Reject>(&body)) return std::move(*r);
  if (auto* h = std::get_if<Hello>(&body))
    m.body = std::move(*h);
  else
    m.body = std::move(std::get<Links>(body));
  return m;
}

}  // namespace mlink::topo
