// bytes.h - big-endian (network byte order) fields, the one place mlink turns integers into
// wire bytes and back. Every codec (proto/topo, proto/bfd, the test packet builder) reads and
// writes through these two classes; none shifts bytes by hand.
//
// ByteWriter appends fields front to back to a vector it owns; the put_*_at() calls overwrite
// what was already written (a length or checksum known only at the end).
//
// ByteReader reads fields front to back over bytes it does not own, for input from the network:
// a read that does not fit fails instead of touching memory past the end. Failure is sticky and
// exhausts the reader: the failed read and every later one return 0 (or an empty span), left()
// is 0 and ok() is false. So a decoder can read a fixed layout field by field and test ok() once,
// and a `while (r.left() > 0)` loop always ends.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace mlink::proto {

class ByteWriter {
 public:
  ByteWriter() = default;
  explicit ByteWriter(size_t reserve) { out_.reserve(reserve); }

  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v >> 8));
    u8(static_cast<uint8_t>(v));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void u64(uint64_t v) {
    u32(static_cast<uint32_t>(v >> 32));
    u32(static_cast<uint32_t>(v));
  }
  void bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void bytes(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }
  void zeros(size_t n) { out_.insert(out_.end(), n, 0); }

  // Overwrite bytes already written. The offsets come from the codec, never from input, so one
  // past size() is a bug: it aborts rather than write out of bounds.
  void put_u16_at(size_t at, uint16_t v) {
    check(at, 2);
    out_[at] = static_cast<uint8_t>(v >> 8);
    out_[at + 1] = static_cast<uint8_t>(v);
  }
  void put_u32_at(size_t at, uint32_t v) {
    put_u16_at(at, static_cast<uint16_t>(v >> 16));
    put_u16_at(at + 2, static_cast<uint16_t>(v));
  }
  void put_bytes_at(size_t at, std::span<const uint8_t> b) {
    check(at, b.size());
    std::copy(b.begin(), b.end(), out_.begin() + static_cast<std::ptrdiff_t>(at));
  }

  size_t size() const { return out_.size(); }
  std::span<const uint8_t> view() const { return out_; }  // valid until the next write
  std::vector<uint8_t> take() && { return std::move(out_); }

 private:
  void check(size_t at, size_t n) const {
    if (at > out_.size() || n > out_.size() - at) std::abort();
  }
  std::vector<uint8_t> out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}

  bool ok() const { return ok_; }      // no read has failed
  size_t pos() const { return pos_; }  // bytes consumed
  size_t left() const { return in_.size() - pos_; }

  uint8_t u8() { return static_cast<uint8_t>(take_be(1)); }
  uint16_t u16() { return static_cast<uint16_t>(take_be(2)); }
  uint32_t u32() { return static_cast<uint32_t>(take_be(4)); }
  uint64_t u64() { return take_be(8); }

  // The next n bytes (a view into the input), or an empty span when fewer are left.
  std::span<const uint8_t> bytes(size_t n) {
    if (!take(n)) return {};
    return in_.subspan(pos_ - n, n);
  }
  void skip(size_t n) { take(n); }
  std::span<const uint8_t> rest() { return bytes(left()); }

 private:
  // Consumes n bytes, or fails and exhausts the reader.
  bool take(size_t n) {
    if (ok_ && n <= left()) {
      pos_ += n;
      return true;
    }
    ok_ = false;
    pos_ = in_.size();
    return false;
  }
  uint64_t take_be(size_t n) {
    if (!take(n)) return 0;
    uint64_t v = 0;
    for (size_t i = pos_ - n; i < pos_; i++) v = v << 8 | in_[i];
    return v;
  }

  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace mlink::proto
