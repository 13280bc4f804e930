// fuzz_bfd_decode - BFD control packet decoder (proto/bfd/codec.h) on arbitrary bytes, without
// authentication and with a key ring. A packet that decodes must re-encode to one that decodes to
// the same packet and re-encodes to the same bytes; with exactly the bytes its length field
// covers (and a zero reserved auth byte) the re-encoding is the input itself.
// seeds: proto/vectors/bfd
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <variant>
#include <vector>

#include "proto/bfd/codec.h"

namespace {

namespace bfd = mlink::bfd;

// The key of the signed seed vectors (proto/vectors/bfd/signed_*.hex).
const std::vector<uint8_t> kKey{'m', 'l', 'i', 'n', 'k', '-', 't',
                                'e', 's', 't', '-', 'k', 'e', 'y'};

void check(bool ok) {
  if (!ok) std::abort();
}

std::vector<uint8_t> reencode(const bfd::ControlPacket& p) {
  return p.auth ? bfd::encode_signed(p, p.auth->key_id, p.auth->seq, kKey) : bfd::encode(p);
}

void round_trip(std::span<const uint8_t> in, const bfd::KeyRing* keys) {
  auto r = bfd::decode(in, keys);
  if (auto* rej = std::get_if<bfd::Reject>(&r)) {
    check(*rej != bfd::Reject::Replay);  // decode() never returns it
    return;
  }
  const auto& p = std::get<bfd::ControlPacket>(r);
  check(p.version == 1 && p.detect_mult != 0 && !p.multipoint && p.my_disc != 0);
  check(p.auth.has_value() == p.auth_present);
  auto out = reencode(p);
  size_t len = in[3];
  bool exact = len == in.size() && len == out.size() && (!p.auth || in[27] == 0);
  if (exact) check(std::vector<uint8_t>(in.begin(), in.end()) == out);
  auto r2 = bfd::decode(out, keys);
  check(std::holds_alternative<bfd::ControlPacket>(r2));
  auto p2 = std::get<bfd::ControlPacket>(r2);
  if (p.auth && !exact) p2.auth->digest = p.auth->digest;  // the reserved byte changed it
  check(p2 == p);
  check(reencode(p2) == out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  round_trip(in, nullptr);
  static const bfd::KeyRing optional{{{1, kKey}}, false};
  static const bfd::KeyRing required{{{1, kKey}, {2, {'x'}}}, true};
  round_trip(in, &optional);
  round_trip(in, &required);
  return 0;
}
