// echo.h - the payload of mlink's BFD echo packets (RFC 5880 §6.4, RFC 5881 §4).
//
// The content of an echo packet is the sender's own business: the peer's datapath reflects it
// unread, so only mlink's own receiver parses what mlink sent. Layout, network byte order:
//
//   0  magic "MLEC"        4 bytes
//   4  my discriminator    u32: the sending session
//   8  sequence number     u32: loss counting (bfd/echo_loss.h)
//  12  send time           u64: microseconds, the sender's monotonic clock (round trip time)
//  20  zero padding        to 32 bytes, so an Ethernet frame needs no padding the reflector
//                          would have to strip
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace mlink::bfd {

inline constexpr std::array<uint8_t, 4> kEchoMagic = {'M', 'L', 'E', 'C'};
inline constexpr size_t kEchoLen = 32;

struct EchoPayload {
  uint32_t my_disc = 0;  // the sender's discriminator: which session sent it
  uint32_t seq = 0;      // per session, one up per echo sent
  uint64_t sent_us = 0;  // when it was sent, on the sender's clock
  bool operator==(const EchoPayload&) const = default;
};

// kEchoLen bytes.
std::vector<uint8_t> encode_echo(const EchoPayload& e);

// nullopt when bytes is shorter than kEchoLen or does not start with kEchoMagic (not ours).
// The padding and anything after kEchoLen bytes are ignored.
std::optional<EchoPayload> decode_echo(std::span<const uint8_t> bytes);

}  // namespace mlink::bfd
