// codec.h - wire format of mlink's topology protocol, version 1 (docs/PROTOCOL.md).
//
// encode() turns a Message into one signed UDP payload; decode() checks a
// received payload against the spec and the key ring and returns either the
// Message or the first reason it was rejected (a metric label). The codec is
// stateless: replay protection needs per-sender state and lives in replay.h.
// Nothing else in mlink reads or writes these bytes.
#pragma once

#include <sodium.h>

#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/ip.h"
#include "common/result.h"

namespace mlink::topo {

inline constexpr uint16_t kDefaultPort = 28012;  // 0x6d6c, "ml"; configurable
inline constexpr uint8_t kVersion = 1;
inline constexpr uint8_t kTtl = 255;  // sent with TTL/hop limit 255, checked on receipt (GTSM)

// Sizes (bytes). A payload never exceeds kMaxPacket: 1280 (IPv6 minimum MTU)
// minus the IPv6 and UDP headers, so it is never fragmented.
inline constexpr size_t kHeaderSize = 52;
inline constexpr size_t kMacSize = crypto_auth_BYTES;  // 32
inline constexpr size_t kMinPacket = kHeaderSize + kMacSize;
inline constexpr size_t kMaxPacket = 1280 - 40 - 8;
inline constexpr size_t kNodeIdSize = 32;

// Count limits; any message within them fits in kMaxPacket.
inline constexpr size_t kMaxTlvs = 64;  // per packet, unknown ones included
inline constexpr size_t kMaxMlAddrs = 4;
inline constexpr size_t kMaxLinkAddrs = 4;
inline constexpr size_t kMaxSeen = 16;
inline constexpr size_t kMaxLinks = 16;
inline constexpr size_t kMaxSubnets = 3;  // per link

enum class MsgType : uint8_t { Hello = 1, Links = 2 };  // 3 (LinksRequest), 4 (Bye) reserved

// TLV types. Bit 15 set: "must understand" (a receiver that does not know the
// type rejects the packet); clear: an unknown TLV is skipped.
enum class TlvType : uint16_t {
  MlAddr = 0x0001,    // HELLO: a sender ML address with its ML prefix length
  LinkAddr = 0x0002,  // HELLO: a sender address on this link with the link's prefix length
  Seen = 0x0003,      // HELLO: a node id heard on this link
  HoldTime = 0x0004,  // HELLO: u32 milliseconds
  Link = 0x0010,      // LINKS: weight, flags, subnets of one link
};
inline constexpr uint16_t kTlvCritical = 0x8000;

using KeyId = uint16_t;
using KeyBytes = std::array<uint8_t, crypto_auth_KEYBYTES>;

struct Key {
  KeyId id = 0;
  KeyBytes bytes{};
};

// Keys a receiver accepts, by key id (old and new during a rotation).
using KeyRing = std::map<KeyId, KeyBytes>;

// Sent periodically on every link, to the link's multicast group and static peers.
struct Hello {
  std::vector<Prefix> ml_addrs;    // sender's ML addresses with the ML prefix length
  std::vector<Prefix> link_addrs;  // sender's addresses on this link, with its prefix length
  std::vector<std::string> seen;   // node ids heard on this link (two-way check)
  uint32_t hold_ms = 0;            // forget this sender on this link after that long
  auto operator<=>(const Hello&) const = default;
};

struct LinkInfo {
  std::vector<Prefix> subnets;  // network prefixes (host bits clear); canonical order key
  uint8_t weight = 1;           // 1..255
  bool backup = false;
  bool drain = false;  // the sender moves this link's buckets away (flags bit 1)
  auto operator<=>(const LinkInfo&) const = default;
};

// The sender's whole link set.
struct Links {
  std::vector<LinkInfo> links;
  auto operator<=>(const Links&) const = default;
};

// Header flags. A receiver ignores the ones it does not know.
// ANSWER (HELLO): the sender has not seen the receiver name it in SEEN yet;
// the receiver answers with a unicast HELLO whose SEEN names the sender.
inline constexpr uint16_t kFlagAnswer = 0x0001;

struct Message {
  uint16_t flags = 0;   // kFlag*; unknown bits are ignored and kept for round trips
  KeyId key_id = 0;     // filled by decode(); encode() writes the Key's id
  uint64_t seq = 0;     // epoch << 32 | counter, see replay.h
  std::string node_id;  // [A-Za-z0-9_-]{1,32}
  std::variant<Hello, Links> body;
  bool operator==(const Message&) const = default;
};

#define MLINK_TOPO_REJECTS(X)                                   \
  X(Truncated, "truncated")                                     \
  X(BadMagic, "bad_magic")                                      \
  X(BadVersion, "bad_version")                                  \
  X(Oversized, "oversized")                                     \
  X(BadLength, "bad_length")                                    \
  X(UnknownKey, "unknown_key")                                  \
  X(BadMac, "bad_mac")                                          \
  X(Replay, "replay") /* from ReplayGuard, never from decode */ \
  X(UnknownType, "unknown_type")                                \
  X(BadNodeId, "bad_node_id")                                   \
  X(BadTlv, "bad_tlv")                                          \
  X(UnknownCriticalTlv, "unknown_critical_tlv")                 \
  X(BadAddress, "bad_address")                                  \
  X(Stale, "stale") /* from ReplayGuard, never from decode */

enum class Reason : uint8_t {
#define MLINK_TOPO_ENUM(name, text) name,
  MLINK_TOPO_REJECTS(MLINK_TOPO_ENUM)
#undef MLINK_TOPO_ENUM
};

inline constexpr size_t kReasonCount = 0
#define MLINK_TOPO_COUNT(name, text) +1
    MLINK_TOPO_REJECTS(MLINK_TOPO_COUNT)
#undef MLINK_TOPO_COUNT
    ;

// The metric label, e.g. "bad_mac".
std::string_view reason_name(Reason r);

struct Reject {
  Reason reason;
  std::string detail;  // for debug logs: what and where
};

// Signs with key (HMAC-SHA-512-256). Fails when the message breaks a rule a
// receiver would reject it for (limits, node id, addresses): what this returns
// always decodes.
Result<std::vector<uint8_t>> encode(const Message& m, const Key& key);

// Checks in the order the spec lists, so the reason is deterministic. The MAC
// is checked (constant time) before anything behind the header is parsed.
std::variant<Message, Reject> decode(std::span<const uint8_t> packet, const KeyRing& keys);

}  // namespace mlink::topo
