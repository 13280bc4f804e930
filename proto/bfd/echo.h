// echo.h - the payload of mlink's BFD echo packets (RFC 5880 §6.4, RFC 5881 §4).
//
// The content of an echo packet is the sender's own business: the peer's datapath reflects it
// unread, so only mlink's own receiver parses what mlink sent. Layout, network byte order:
//
//   0  magic "MLEC"        4 bytes
//   4  my discriminator    u32: the sending session
//   8  sequence number     u32: loss counting (bfd/echo_loss.h)
//  12  send time           u64: microseconds, the sender's monotonic clock (round trip time)
//  20  tag                 8 bytes: SipHash-2-4 (libsodium crypto_shorthash) of bytes 0..19
//                          under the sending agent's own random 16-byte key
//  28  zero padding        to 32 bytes, so an Ethernet frame needs no padding the reflector
//                          would have to strip
//
// Only the sender ever checks the tag, so the key is never shared: a forged echo (from an
// on-link host, a peer holding the BFD keys included) cannot prove a link. A restarted agent
// has a new key; the previous agent's echoes still in flight are refused (bad_tag).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <variant>
#include <vector>

namespace mlink::bfd {

inline constexpr std::array<uint8_t, 4> kEchoMagic = {'M', 'L', 'E', 'C'};
inline constexpr size_t kEchoLen = 32;
inline constexpr size_t kEchoTagOffset = 20;
inline constexpr size_t kEchoTagLen = 8;

using EchoKey = std::array<uint8_t, 16>;
EchoKey random_echo_key();

struct EchoPayload {
  uint32_t my_disc = 0;  // the sender's discriminator: which session sent it
  uint32_t seq = 0;      // per session, one up per echo sent
  uint64_t sent_us = 0;  // when it was sent, on the sender's clock
  bool operator==(const EchoPayload&) const = default;
};

// Why a datagram on the echo socket is not an echo of ours.
enum class EchoReject : uint8_t {
  NotOurs,  // shorter than kEchoLen or no kEchoMagic
  BadTag,   // shaped like ours, but the tag is not ours: forged, or from a previous agent
};
const char* to_string(EchoReject r);

// kEchoLen bytes, tagged with key.
std::vector<uint8_t> encode_echo(const EchoPayload& e, const EchoKey& key);

// The payload when bytes is an echo this key tagged. The padding and anything after kEchoLen
// bytes are ignored.
std::variant<EchoPayload, EchoReject> decode_echo(std::span<const uint8_t> bytes,
                                                  const EchoKey& key);

// Group echo (bpf/include/mlink_abi.h, "Group echo"): one per link socket and interval, to the
// all-nodes group; every peer's datapath reflects it by unicast, and the sender's datapath
// checks the reflection (socket, seq, nonce) against what the agent wrote in ml_echo_tx.
// Layout, network byte order (the nonce as random bytes):
//
//   0  magic "MLEG"        4 bytes
//   4  socket              u32: the sender's ml_echo_tx entry
//   8  sequence number     u32: per socket, one up per group echo
//  12  send time           u64: microseconds, the sender's CLOCK_MONOTONIC
//  20  nonce               8 random bytes, new for every echo
//  28  zero padding        to 32 bytes
inline constexpr std::array<uint8_t, 4> kGroupEchoMagic = {'M', 'L', 'E', 'G'};

struct GroupEcho {
  uint32_t socket = 0;
  uint32_t seq = 0;
  uint64_t sent_us = 0;
  uint64_t nonce = 0;  // in host memory order: the datapath compares the 8 bytes as written
  bool operator==(const GroupEcho&) const = default;
};
std::vector<uint8_t> encode_group_echo(const GroupEcho& e);                  // kEchoLen bytes
std::optional<GroupEcho> decode_group_echo(std::span<const uint8_t> bytes);  // nullopt: not one
uint64_t random_nonce();

}  // namespace mlink::bfd
