// codec.h - BFD control packets on the wire (RFC 5880 §4, async mode over UDP per RFC 5881).
//
// The only code that touches BFD bytes. encode() writes a control packet, encode_signed() one
// with a Keyed SHA1 authentication section (§4.4, §6.7.4); decode() parses one and applies every
// reception check of §6.8.6 that needs no session state, naming the failed check in a Reject
// (exported as a metric label). What needs a session stays with the caller: the IP TTL (255,
// RFC 5881 §5; socket layer), the Your Discriminator lookup, the Auth Type matching the one
// configured, and the sequence number window (Reject::Replay is for the caller to report).
// Fields are read and written with explicit shifts in network byte order, never C bitfields.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <variant>
#include <vector>

namespace mlink::bfd {

constexpr uint16_t kControlPort = 3784;  // RFC 5881 §4, single hop
constexpr size_t kHeaderLen = 24;        // mandatory section
constexpr size_t kSha1AuthLen = 28;      // Keyed SHA1 auth section (§4.4)
constexpr size_t kSignedLen = kHeaderLen + kSha1AuthLen;
constexpr size_t kMaxKeyLen = 20;  // §6.7.4: a key is 1..20 bytes

enum class State : uint8_t { AdminDown = 0, Down = 1, Init = 2, Up = 3 };

// §4.1; the field is 5 bits, values 9..31 are reserved but kept as received.
enum class Diag : uint8_t {
  None = 0,
  ControlDetectExpired = 1,
  EchoFailed = 2,
  NeighborDown = 3,
  ForwardingReset = 4,
  PathDown = 5,
  ConcatPathDown = 6,
  AdminDown = 7,
  ReverseConcatPathDown = 8,
};

enum class AuthType : uint8_t { KeyedSha1 = 4, MeticulousKeyedSha1 = 5 };

struct Auth {
  uint8_t type = static_cast<uint8_t>(AuthType::MeticulousKeyedSha1);  // 4 or 5
  uint8_t key_id = 0;
  uint32_t seq = 0;
  std::array<uint8_t, 20> digest{};
  bool operator==(const Auth&) const = default;
};

struct ControlPacket {
  uint8_t version = 1;  // 3 bits
  Diag diag = Diag::None;
  State state = State::Down;
  bool poll = false;
  bool final = false;
  bool cpi = false;           // C: control plane independent
  bool auth_present = false;  // A: set by encode_signed(), cleared by encode()
  bool demand = false;
  bool multipoint = false;  // M: must be zero, decode() rejects it
  uint8_t detect_mult = 3;
  uint32_t my_disc = 0;
  uint32_t your_disc = 0;
  uint32_t desired_min_tx_us = 0;
  uint32_t required_min_rx_us = 0;
  uint32_t required_min_echo_rx_us = 0;
  std::optional<Auth> auth;  // set by decode() when the A bit was set and verified
  bool operator==(const ControlPacket&) const = default;
};

// The keys of one session. decode() with a null KeyRing means no authentication configured.
struct KeyRing {
  std::map<uint8_t, std::vector<uint8_t>> keys;  // key id -> key, 1..20 bytes
  bool required = false;  // reject packets without the A bit (false: accept both, transition)
};

// Why a received packet was discarded; one value per check (RFC 5880 §6.8.6 and §6.7.4).
enum class Reject : uint8_t {
  Truncated,            // fewer than 24 bytes received
  BadVersion,           // version != 1
  BadLength,            // length < 24, < 26 with A, or more than was received
  ZeroDetectMult,       // detect mult == 0
  Multipoint,           // M bit set
  ZeroMyDisc,           // my discriminator == 0
  ZeroYourDiscNotDown,  // your discriminator == 0 and state not Down/AdminDown
  AuthMismatch,         // A bit set but no key configured, or clear but a key required
  BadAuthType,          // auth type other than Keyed SHA1 (4) / Meticulous Keyed SHA1 (5)
  BadAuthLength,        // auth len != 28 or packet length != 24 + 28
  KeyId,                // auth key id not in the key ring
  BadDigest,            // SHA1 digest does not verify
  Replay,               // never returned by decode(): the caller's sequence number check
};

const char* to_string(State s);   // "admin_down", "down", "init", "up"
const char* to_string(Diag d);    // "none", "control_detect_expired", ..., "reserved"
const char* to_string(Reject r);  // metric label: "truncated", "bad_version", ...

// A 24-byte packet without authentication: the A bit is written as 0 and p.auth is ignored.
std::vector<uint8_t> encode(const ControlPacket& p);

// A 52-byte packet with the A bit and a Keyed SHA1 section (§4.4) whose digest is computed per
// §6.7.4. The auth type is 5 (meticulous) unless p.auth holds type 4. A key longer than 20 bytes
// is cut to 20 (config validation should refuse it); decode() does the same.
std::vector<uint8_t> encode_signed(ControlPacket p, uint8_t key_id, uint32_t seq,
                                   std::span<const uint8_t> key);

using DecodeResult = std::variant<ControlPacket, Reject>;

// Parses bytes (a UDP payload) and runs the checks above, in the order of §6.8.6. Bytes past the
// Length field are ignored. With the A bit the digest is verified in constant time and p.auth
// holds type, key id and sequence number for the caller's replay and auth type checks.
DecodeResult decode(std::span<const uint8_t> bytes, const KeyRing* keys);

}  // namespace mlink::bfd
