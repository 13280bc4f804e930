// fuzz_topo_decode - libFuzzer target for the topology protocol decoder.
//
// Each input is a packet. It is decoded twice: as it is (the checks before
// the MAC), and "re-signed": length field, key id and MAC trailer fixed with
// the test key, so the parser behind the MAC sees arbitrary bodies instead
// of stopping at bad_mac. A packet that decodes must survive a round trip:
// encode accepts it, and decode(encode(m)) == m with a stable encoding.
// seeds: proto/vectors/topo
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "fuzz/topo_resign.h"
#include "proto/topo/codec.h"

using namespace mlink::topo;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_topo_decode: %s\n", what);
  std::abort();
}

void check_round_trip(const Message& m, const Key& key, const KeyRing& ring) {
  auto once = encode(m, key);
  if (!once.ok()) fail(("accepted message does not encode: " + once.error().message).c_str());
  auto back = decode(once.value(), ring);
  const auto* m2 = std::get_if<Message>(&back);
  if (m2 == nullptr) fail("encoded message does not decode");
  if (!(*m2 == m)) fail("round trip changed the message");
  auto twice = encode(*m2, key);
  if (!twice.ok() || twice.value() != once.value()) fail("encoding is not stable");
}

void run(std::span<const uint8_t> packet, const Key& key, const KeyRing& ring) {
  auto r = decode(packet, ring);
  if (const auto* m = std::get_if<Message>(&r)) check_round_trip(*m, key, ring);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Key key = mlink::fuzzing::topo_test_key();
  static const KeyRing ring{{key.id, key.bytes}};
  run(std::span<const uint8_t>(data, size), key, ring);
  if (auto p = mlink::fuzzing::topo_resign({data, size}, key); !p.empty()) run(p, key, ring);
  return 0;
}
