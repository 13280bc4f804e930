#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "proto/common/bytes.h"

using mlink::proto::ByteReader;
using mlink::proto::ByteWriter;

using Bytes = std::vector<uint8_t>;

TEST_CASE("ByteWriter appends big-endian fields front to back") {
  ByteWriter w;
  w.u8(0x01);
  w.u16(0x0203);
  w.u32(0x04050607);
  w.u64(0x08090a0b0c0d0e0f);
  w.bytes(std::array<uint8_t, 2>{0xaa, 0xbb});
  w.bytes(std::string_view("ML"));
  w.zeros(3);
  CHECK(w.size() == 1 + 2 + 4 + 8 + 2 + 2 + 3);
  CHECK(Bytes(w.view().begin(), w.view().end()) ==
        Bytes{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
              0x0c, 0x0d, 0x0e, 0x0f, 0xaa, 0xbb, 'M',  'L',  0,    0,    0});
  CHECK(std::move(w).take().size() == 22);
}

TEST_CASE("ByteWriter put_*_at overwrites what was written, in place") {
  ByteWriter w;
  w.zeros(8);
  w.put_u16_at(0, 0xbeef);
  w.put_u32_at(2, 0x01020304);
  w.put_bytes_at(6, std::array<uint8_t, 2>{0xfe, 0xed});
  CHECK(w.size() == 8);
  CHECK(std::move(w).take() == Bytes{0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0xfe, 0xed});

  ByteWriter last;
  last.zeros(2);
  last.put_u16_at(0, 0x1234);  // the final two bytes exactly
  CHECK(std::move(last).take() == Bytes{0x12, 0x34});
}

TEST_CASE("ByteReader reads what ByteWriter wrote") {
  ByteWriter w;
  w.u8(0xff);
  w.u16(0xfffe);
  w.u32(0x80000001);
  w.u64(0xfedcba9876543210);
  w.bytes(std::array<uint8_t, 3>{1, 2, 3});
  Bytes b = std::move(w).take();

  ByteReader r(b);
  CHECK(r.left() == b.size());
  CHECK(r.u8() == 0xff);
  CHECK(r.u16() == 0xfffe);
  CHECK(r.u32() == 0x80000001);
  CHECK(r.u64() == 0xfedcba9876543210);
  CHECK(r.pos() == 15);
  auto tail = r.bytes(2);
  REQUIRE(tail.size() == 2);
  CHECK(tail[0] == 1);
  CHECK(tail[1] == 2);
  CHECK(tail.data() == b.data() + 15);  // a view into the input, not a copy
  CHECK(r.rest().size() == 1);
  CHECK(r.left() == 0);
  CHECK(r.ok());
  CHECK(r.rest().empty());  // nothing left is not a failure
  CHECK(r.bytes(0).empty());
  CHECK(r.ok());
}

TEST_CASE("ByteReader: a read past the end fails, returns 0 and exhausts the reader") {
  const Bytes b{0x01, 0x02, 0x03};
  for (int width : {2, 4, 8}) {
    CAPTURE(width);
    ByteReader r(b);
    CHECK(r.u8() == 0x01);
    uint64_t v = width == 2 ? r.u16() : width == 4 ? r.u32() : r.u64();
    if (width == 2) {
      CHECK(v == 0x0203);
      CHECK(r.ok());
      CHECK(r.u8() == 0);  // one past the end
    } else {
      CHECK(v == 0);
    }
    CHECK_FALSE(r.ok());
    CHECK(r.left() == 0);
    CHECK(r.pos() == b.size());
  }
}

TEST_CASE("ByteReader: failure is sticky, even for reads that would fit") {
  const Bytes b{0x10, 0x20, 0x30, 0x40, 0x50};
  ByteReader r(b);
  CHECK(r.u32() == 0x10203040);
  CHECK(r.u16() == 0);  // 1 byte left, 2 wanted
  CHECK_FALSE(r.ok());
  CHECK(r.u8() == 0);  // the remaining byte is not handed out after a failure
  CHECK(r.bytes(0).empty());
  CHECK(r.rest().empty());
  CHECK_FALSE(r.ok());
}

TEST_CASE("ByteReader: bytes() and skip() past the end fail cleanly") {
  const Bytes b{1, 2, 3, 4};
  {
    ByteReader r(b);
    CHECK(r.bytes(5).empty());
    CHECK_FALSE(r.ok());
  }
  {
    ByteReader r(b);
    r.skip(2);
    CHECK(r.ok());
    CHECK(r.u16() == 0x0304);
    r.skip(1);
    CHECK_FALSE(r.ok());
  }
  {
    ByteReader r(b);  // a huge length from hostile input must not wrap
    CHECK(r.bytes(SIZE_MAX).empty());
    CHECK_FALSE(r.ok());
  }
  {
    ByteReader r(std::span<const uint8_t>{});
    CHECK(r.left() == 0);
    CHECK(r.u8() == 0);
    CHECK_FALSE(r.ok());
  }
}

TEST_CASE("ByteReader: a length-prefixed loop ends on truncated input") {
  // TLV-style walk over hostile bytes: u16 length then value; the last length runs past the end.
  const Bytes b{0x00, 0x01, 0xaa, 0x00, 0x05, 0xbb};
  ByteReader r(b);
  int values = 0, iterations = 0;
  while (r.left() > 0 && iterations++ < 10) {
    uint16_t len = r.u16();
    auto v = r.bytes(len);
    if (r.ok()) values++;
    CHECK(v.size() == (r.ok() ? len : 0u));
  }
  CHECK(values == 1);
  CHECK(iterations == 2);
  CHECK_FALSE(r.ok());
}
