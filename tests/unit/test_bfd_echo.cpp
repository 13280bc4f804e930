#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "proto/bfd/echo.h"

namespace bfd = mlink::bfd;
using bfd::EchoPayload;

namespace {

// magic "MLEC", disc 0x11223344, seq 0xfffffffe, sent 0x0001020304050607 us, 12 zero bytes.
const std::vector<uint8_t> kKnown = {
    'M',  'L',  'E',  'C',                                       // magic
    0x11, 0x22, 0x33, 0x44,                                      // my discriminator
    0xff, 0xff, 0xff, 0xfe,                                      // sequence
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,              // send time
    0,    0,    0,    0,    0,    0,    0,    0,    0, 0, 0, 0,  // padding
};

const EchoPayload kKnownPayload{
    .my_disc = 0x11223344, .seq = 0xfffffffe, .sent_us = 0x0001020304050607};

}  // namespace

TEST_CASE("bfd echo: a known payload encodes to exactly these bytes") {
  REQUIRE(kKnown.size() == bfd::kEchoLen);
  CHECK(bfd::encode_echo(kKnownPayload) == kKnown);
  auto back = bfd::decode_echo(kKnown);
  REQUIRE(back.has_value());
  CHECK(*back == kKnownPayload);
}

TEST_CASE("bfd echo: round trip") {
  for (const EchoPayload& e :
       {EchoPayload{}, EchoPayload{.my_disc = 1, .seq = 0, .sent_us = 1},
        EchoPayload{.my_disc = 0xffffffff, .seq = 0xffffffff, .sent_us = 0xffffffffffffffff}}) {
    auto bytes = bfd::encode_echo(e);
    CHECK(bytes.size() == bfd::kEchoLen);
    auto back = bfd::decode_echo(bytes);
    REQUIRE(back.has_value());
    CHECK(*back == e);
  }
}

TEST_CASE("bfd echo: short input is refused") {
  for (size_t n = 0; n < bfd::kEchoLen; n++) {
    CAPTURE(n);
    std::vector<uint8_t> cut(kKnown.begin(), kKnown.begin() + static_cast<std::ptrdiff_t>(n));
    CHECK_FALSE(bfd::decode_echo(cut).has_value());
  }
}

TEST_CASE("bfd echo: a payload that is not ours is refused") {
  for (size_t i = 0; i < bfd::kEchoMagic.size(); i++) {
    CAPTURE(i);
    auto b = kKnown;
    b[i] ^= 0x20;  // "mLEC", ...
    CHECK_FALSE(bfd::decode_echo(b).has_value());
  }
  CHECK_FALSE(bfd::decode_echo(std::vector<uint8_t>(bfd::kEchoLen, 0)).has_value());
}

TEST_CASE("bfd echo: padding and trailing bytes are ignored") {
  auto b = kKnown;
  b[bfd::kEchoLen - 1] = 0x5a;   // padding not zero
  b.insert(b.end(), {1, 2, 3});  // longer than kEchoLen (a reflector may pad)
  auto back = bfd::decode_echo(b);
  REQUIRE(back.has_value());
  CHECK(*back == kKnownPayload);
}
