#include "proto/bfd/echo.h"

#include <algorithm>
#include <utility>

#include "proto/common/bytes.h"

namespace mlink::bfd {

std::vector<uint8_t> encode_echo(const EchoPayload& e) {
  proto::ByteWriter w(kEchoLen);
  w.bytes(kEchoMagic);
  w.u32(e.my_disc);
  w.u32(e.seq);
  w.u64(e.sent_us);
  w.zeros(kEchoLen - w.size());
  return std::move(w).take();
}

std::optional<EchoPayload> decode_echo(std::span<const uint8_t> bytes) {
  if (bytes.size() < kEchoLen) return std::nullopt;
  proto::ByteReader r(bytes);
  std::span<const uint8_t> magic = r.bytes(kEchoMagic.size());
  EchoPayload e;
  e.my_disc = r.u32();
  e.seq = r.u32();
  e.sent_us = r.u64();
  if (!r.ok() || !std::ranges::equal(magic, kEchoMagic)) return std::nullopt;
  return e;
}

}  // namespace mlink::bfd
