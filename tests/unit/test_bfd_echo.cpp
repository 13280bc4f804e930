#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <variant>
#include <vector>

#include "proto/bfd/echo.h"

namespace bfd = mlink::bfd;
using bfd::EchoPayload;
using bfd::EchoReject;

namespace {

const bfd::EchoKey kKey = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

// magic "MLEC", disc 0x11223344, seq 0xfffffffe, sent 0x0001020304050607 us, the tag, 4 zero
// bytes. The tag is SipHash-2-4 of the first 20 bytes under kKey, computed apart from libsodium
// (a Python SipHash-2-4 that gives the paper's vector, 00..0e -> a129ca6149be45e5).
const std::vector<uint8_t> kKnown = {
    'M',  'L',  'E',  'C',                           // magic
    0x11, 0x22, 0x33, 0x44,                          // my discriminator
    0xff, 0xff, 0xff, 0xfe,                          // sequence
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,  // send time
    0x0a, 0xab, 0xd0, 0x9b, 0x2f, 0xf7, 0xac, 0x15,  // tag
    0,    0,    0,    0,                             // padding
};

const EchoPayload kKnownPayload{
    .my_disc = 0x11223344, .seq = 0xfffffffe, .sent_us = 0x0001020304050607};

std::variant<EchoPayload, EchoReject> decode(const std::vector<uint8_t>& b,
                                             const bfd::EchoKey& key = kKey) {
  return bfd::decode_echo(b, key);
}

bool refused_as(const std::variant<EchoPayload, EchoReject>& r, EchoReject why) {
  return std::holds_alternative<EchoReject>(r) && std::get<EchoReject>(r) == why;
}

}  // namespace

TEST_CASE("bfd echo: a known payload encodes to exactly these bytes") {
  REQUIRE(kKnown.size() == bfd::kEchoLen);
  CHECK(bfd::encode_echo(kKnownPayload, kKey) == kKnown);
  auto back = decode(kKnown);
  REQUIRE(std::holds_alternative<EchoPayload>(back));
  CHECK(std::get<EchoPayload>(back) == kKnownPayload);
}

TEST_CASE("bfd echo: round trip under a random key") {
  auto key = bfd::random_echo_key();
  CHECK(key != bfd::random_echo_key());
  for (const EchoPayload& e :
       {EchoPayload{}, EchoPayload{.my_disc = 1, .seq = 0, .sent_us = 1},
        EchoPayload{.my_disc = 0xffffffff, .seq = 0xffffffff, .sent_us = 0xffffffffffffffff}}) {
    auto bytes = bfd::encode_echo(e, key);
    CHECK(bytes.size() == bfd::kEchoLen);
    auto back = decode(bytes, key);
    REQUIRE(std::holds_alternative<EchoPayload>(back));
    CHECK(std::get<EchoPayload>(back) == e);
  }
}

TEST_CASE("bfd echo: short input is not ours") {
  for (size_t n = 0; n < bfd::kEchoLen; n++) {
    CAPTURE(n);
    std::vector<uint8_t> cut(kKnown.begin(), kKnown.begin() + static_cast<std::ptrdiff_t>(n));
    CHECK(refused_as(decode(cut), EchoReject::NotOurs));
  }
}

TEST_CASE("bfd echo: a payload without our magic is not ours") {
  for (size_t i = 0; i < bfd::kEchoMagic.size(); i++) {
    CAPTURE(i);
    auto b = kKnown;
    b[i] ^= 0x20;  // "mLEC", ...
    CHECK(refused_as(decode(b), EchoReject::NotOurs));
  }
  CHECK(refused_as(decode(std::vector<uint8_t>(bfd::kEchoLen, 0)), EchoReject::NotOurs));
}

// The forgery an on-link host could make before the tag: the right magic, discriminator and
// a fresh sequence number. Any change to the tagged bytes or the tag, or another agent's key
// (a restarted agent's, or a peer's with the same BFD keys), is refused.
TEST_CASE("bfd echo: every tagged byte counts; another key's echo is refused") {
  for (size_t i = 0; i < bfd::kEchoTagOffset + bfd::kEchoTagLen; i++) {
    CAPTURE(i);
    auto b = kKnown;
    b[i] ^= 0x01;
    CHECK(std::holds_alternative<EchoReject>(decode(b)));
  }
  auto untagged = kKnown;
  std::fill(untagged.begin() + bfd::kEchoTagOffset, untagged.end(), 0);  // the old layout
  CHECK(refused_as(decode(untagged), EchoReject::BadTag));
  CHECK(refused_as(decode(kKnown, bfd::random_echo_key()), EchoReject::BadTag));
}

TEST_CASE("bfd echo: padding and trailing bytes are ignored") {
  auto b = kKnown;
  b[bfd::kEchoLen - 1] = 0x5a;   // padding not zero
  b.insert(b.end(), {1, 2, 3});  // longer than kEchoLen (a reflector may pad)
  auto back = decode(b);
  REQUIRE(std::holds_alternative<EchoPayload>(back));
  CHECK(std::get<EchoPayload>(back) == kKnownPayload);
}

// Group echo (proto/bfd/echo.h): the layout byte for byte, as ml_ingress reads it
// (bpf/lib/group_echo.h: struct ml_echo_wire), and what is not one.
TEST_CASE("group echo: known bytes both ways; another magic or a short one is not one") {
  const std::vector<uint8_t> known = {
      'M',  'L',  'E',  'G',                           // magic
      0x00, 0x00, 0x00, 0x03,                          // socket 3
      0x80, 0x00, 0x00, 0x01,                          // sequence
      0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,  // send time
      0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,  // nonce, as the sender's memory holds it
      0,    0,    0,    0,                             // padding
  };
  uint64_t nonce;
  std::memcpy(&nonce, known.data() + 20, sizeof(nonce));
  const bfd::GroupEcho e{
      .socket = 3, .seq = 0x80000001, .sent_us = 0x0001020304050607, .nonce = nonce};
  CHECK(bfd::encode_group_echo(e) == known);
  auto back = bfd::decode_group_echo(known);
  REQUIRE(back.has_value());
  CHECK(*back == e);
  auto other = known;
  other[3] = 'C';  // a unicast echo's magic
  CHECK_FALSE(bfd::decode_group_echo(other).has_value());
  CHECK_FALSE(bfd::decode_group_echo(std::span(known).first(31)).has_value());
  CHECK(bfd::random_nonce() != bfd::random_nonce());  // 2^-64 to fail
}
