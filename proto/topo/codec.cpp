#include "proto/topo/codec.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <utility>

namespace mlink::topo {
namespace {

constexpr std::array<uint8_t, 4> kMagic = {'M', 'L', 'N', 'K'};
constexpr uint8_t kLinkBackup = 0x01;  // LINK TLV flags
constexpr uint8_t kLinkDrain = 0x02;
constexpr uint8_t kFamily4 = 4;  // address family codes on the wire (not AF_*)
constexpr uint8_t kFamily6 = 6;

// Header field offsets (docs/PROTOCOL.md, "Header").
constexpr size_t kOffVersion = 4;
constexpr size_t kOffType = 5;
constexpr size_t kOffFlags = 6;
constexpr size_t kOffLength = 8;
constexpr size_t kOffKeyId = 10;
constexpr size_t kOffSeq = 12;
constexpr size_t kOffNodeId = 20;

// libsodium must be initialised before use; once per process is enough.
void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) {
    std::fputs("mlink: sodium_init() failed\n", stderr);
    std::abort();
  }
}

// Appends big-endian fields; the packet is built front to back.
class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v >> 8));
    u8(static_cast<uint8_t>(v));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void u64(uint64_t v) {
    u32(static_cast<uint32_t>(v >> 32));
    u32(static_cast<uint32_t>(v));
  }
  void bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void put_u16_at(size_t at, uint16_t v) {
    out_[at] = static_cast<uint8_t>(v >> 8);
    out_[at + 1] = static_cast<uint8_t>(v);
  }
  size_t size() const { return out_.size(); }
  std::vector<uint8_t>& data() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

// Reads big-endian fields with bounds checks: a read past the end fails and
// leaves the reader where it was.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  size_t left() const { return in_.size() - pos_; }
  bool u8(uint8_t& v) {
    if (left() < 1) return false;
    v = in_[pos_++];
    return true;
  }
  bool u16(uint16_t& v) {
    if (left() < 2) return false;
    v = static_cast<uint16_t>(in_[pos_] << 8 | in_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u32(uint32_t& v) {
    uint16_t hi, lo;
    if (left() < 4) return false;
    u16(hi);
    u16(lo);
    v = uint32_t{hi} << 16 | lo;
    return true;
  }
  bool u64(uint64_t& v) {
    uint32_t hi, lo;
    if (left() < 8) return false;
    u32(hi);
    u32(lo);
    v = uint64_t{hi} << 32 | lo;
    return true;
  }
  bool bytes(size_t n, std::span<const uint8_t>& v) {
    if (left() < n) return false;
    v = in_.subspan(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

uint16_t get_u16(std::span<const uint8_t> p, size_t at) {
  return static_cast<uint16_t>(p[at] << 8 | p[at + 1]);
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
    uint32_t v = uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
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
  Reader r(v);
  uint8_t flags = 0;
  if (!r.u8(out.weight) || !r.u8(flags)) return reject(Reason::BadTlv, "LINK: shorter than 2");
  if (out.weight == 0) return reject(Reason::BadTlv, "LINK: weight 0");
  out.backup = flags & kLinkBackup;
  out.drain = flags & kLinkDrain;
  while (r.left() > 0) {
    uint8_t family = 0, len = 0;
    std::span<const uint8_t> raw;
    if (!r.u8(family) || !r.u8(len)) return reject(Reason::BadTlv, "LINK: truncated subnet");
    if (family != kFamily4 && family != kFamily6)
      return reject(Reason::BadAddress, "LINK: family " + std::to_string(family));
    if (!r.bytes(family == kFamily4 ? 4 : 16, raw))
      return reject(Reason::BadTlv, "LINK: truncated subnet");
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
      Reader r(v);
      if (v.size() != 4 || !r.u32(h.hold_ms))
        return reject(Reason::BadTlv, "HOLD_TIME: length " + std::to_string(v.size()));
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
  Reader r(body);
  size_t count = 0;
  while (r.left() > 0) {
    uint16_t type = 0, len = 0;
    std::span<const uint8_t> value;
    if (!r.u16(type) || !r.u16(len)) return reject(Reason::BadTlv, "truncated TLV header");
    if (!r.bytes(len, value))
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

void put_tlv_header(Writer& w, TlvType type, size_t len) {
  w.u16(static_cast<uint16_t>(type));
  w.u16(static_cast<uint16_t>(len));
}

void put_host_prefix(Writer& w, TlvType type, const Prefix& p) {
  put_tlv_header(w, type, 1 + p.addr.size());
  w.u8(p.len);
  w.bytes(addr_bytes(p.addr));
}

void put_body(Writer& w, const Hello& h) {
  for (const auto& p : h.ml_addrs) put_host_prefix(w, TlvType::MlAddr, p);
  for (const auto& p : h.link_addrs) put_host_prefix(w, TlvType::LinkAddr, p);
  put_tlv_header(w, TlvType::HoldTime, 4);
  w.u32(h.hold_ms);
  for (const auto& id : h.seen) {
    put_tlv_header(w, TlvType::Seen, id.size());
    w.bytes(std::span(reinterpret_cast<const uint8_t*>(id.data()), id.size()));
  }
}

void put_body(Writer& w, const Links& l) {
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
  Writer w;
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
  crypto_auth(mac.data(), w.data().data(), w.size(), key.bytes.data());
  w.bytes(mac);
  // Whatever we send must pass our own receiver (e.g. addresses).
  auto back = decode(w.data(), KeyRing{{key.id, key.bytes}});
  if (const auto* r = std::get_if<Reject>(&back))
    return Error{"topo encode: would be rejected: " + std::string(reason_name(r->reason)) + ": " +
                 r->detail};
  return std::move(w.data());
}

std::variant<Message, Reject> decode(std::span<const uint8_t> p, const KeyRing& keys) {
  ensure_sodium();
  if (p.size() < kMinPacket)
    return reject(Reason::Truncated,
                  std::to_string(p.size()) + " bytes, need " + std::to_string(kMinPacket));
  if (!std::equal(kMagic.begin(), kMagic.end(), p.begin())) return reject(Reason::BadMagic, "");
  if (p[kOffVersion] != kVersion)
    return reject(Reason::BadVersion, "version " + std::to_string(p[kOffVersion]));
  if (p.size() > kMaxPacket) return reject(Reason::Oversized, std::to_string(p.size()) + " bytes");
  if (get_u16(p, kOffLength) != p.size())
    return reject(Reason::BadLength, "length field " + std::to_string(get_u16(p, kOffLength)) +
                                         ", datagram " + std::to_string(p.size()));
  KeyId key_id = get_u16(p, kOffKeyId);
  auto key = keys.find(key_id);
  if (key == keys.end()) return reject(Reason::UnknownKey, "key id " + std::to_string(key_id));
  size_t signed_len = p.size() - kMacSize;
  if (crypto_auth_verify(p.data() + signed_len, p.data(), signed_len, key->second.data()) != 0)
    return reject(Reason::BadMac, "key id " + std::to_string(key_id));

  // Authenticated from here on.
  uint8_t type = p[kOffType];
  if (type != static_cast<uint8_t>(MsgType::Hello) && type != static_cast<uint8_t>(MsgType::Links))
    return reject(Reason::UnknownType, "type " + std::to_string(type));
  Message m;
  m.flags = get_u16(p, kOffFlags);
  m.key_id = key_id;
  Reader seq(p.subspan(kOffSeq, 8));
  seq.u64(m.seq);
  auto id = parse_node_id_field(p.subspan(kOffNodeId, kNodeIdSize));
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
