// topo_resign.h - for the fuzzers: a topology packet with its length field,
// key id and MAC trailer made right for the test key, so what lies behind
// the MAC check (the body parser, the receive path) sees arbitrary bytes
// instead of stopping at bad_mac.
#pragma once

#include <sodium.h>

#include <cstdint>
#include <span>
#include <vector>

#include "proto/topo/codec.h"

namespace mlink::fuzzing {

// The key of the test vectors (proto/vectors/topo): id 1, bytes 0..31.
inline topo::Key topo_test_key() {
  topo::Key k{1, {}};
  for (size_t i = 0; i < k.bytes.size(); i++) k.bytes[i] = static_cast<uint8_t>(i);
  return k;
}

// Empty when the input is too short or too long to be a packet.
inline std::vector<uint8_t> topo_resign(std::span<const uint8_t> in, const topo::Key& key) {
  const size_t size = in.size();
  if (size < topo::kMinPacket || size > 65535) return {};
  std::vector<uint8_t> p(in.begin(), in.end());
  p[8] = static_cast<uint8_t>(size >> 8);  // total length
  p[9] = static_cast<uint8_t>(size);
  p[10] = static_cast<uint8_t>(key.id >> 8);
  p[11] = static_cast<uint8_t>(key.id);
  crypto_auth(p.data() + size - topo::kMacSize, p.data(), size - topo::kMacSize, key.bytes.data());
  return p;
}

}  // namespace mlink::fuzzing
