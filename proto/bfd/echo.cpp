#include "proto/bfd/echo.h"

#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "proto/common/bytes.h"

namespace mlink::bfd {
namespace {

static_assert(sizeof(EchoKey) == crypto_shorthash_KEYBYTES);
static_assert(kEchoTagLen == crypto_shorthash_BYTES);

std::array<uint8_t, kEchoTagLen> tag_of(std::span<const uint8_t> head, const EchoKey& key) {
  std::array<uint8_t, kEchoTagLen> tag{};
  crypto_shorthash(tag.data(), head.data(), head.size(), key.data());
  return tag;
}

}  // namespace

EchoKey random_echo_key() {
  if (sodium_init() < 0) {  // no entropy source at all: nothing else would work either
    std::fputs("mlink: sodium_init() failed\n", stderr);
    std::abort();
  }
  EchoKey k;
  randombytes_buf(k.data(), k.size());
  return k;
}

const char* to_string(EchoReject r) {
  switch (r) {
    case EchoReject::NotOurs:
      return "echo_not_ours";
    case EchoReject::BadTag:
      return "echo_bad_tag";
  }
  return "?";
}

std::vector<uint8_t> encode_echo(const EchoPayload& e, const EchoKey& key) {
  proto::ByteWriter w(kEchoLen);
  w.bytes(kEchoMagic);
  w.u32(e.my_disc);
  w.u32(e.seq);
  w.u64(e.sent_us);
  std::vector<uint8_t> head = std::move(w).take();
  auto tag = tag_of(head, key);
  head.insert(head.end(), tag.begin(), tag.end());
  head.resize(kEchoLen, 0);
  return head;
}

std::variant<EchoPayload, EchoReject> decode_echo(std::span<const uint8_t> bytes,
                                                  const EchoKey& key) {
  if (bytes.size() < kEchoLen) return EchoReject::NotOurs;
  proto::ByteReader r(bytes);
  std::span<const uint8_t> magic = r.bytes(kEchoMagic.size());
  EchoPayload e;
  e.my_disc = r.u32();
  e.seq = r.u32();
  e.sent_us = r.u64();
  if (!r.ok() || !std::ranges::equal(magic, kEchoMagic)) return EchoReject::NotOurs;
  auto want = tag_of(bytes.first(kEchoTagOffset), key);
  // Constant time: the tag is a secret's output, compared like one.
  if (sodium_memcmp(want.data(), bytes.data() + kEchoTagOffset, kEchoTagLen) != 0)
    return EchoReject::BadTag;
  return e;
}

std::vector<uint8_t> encode_group_echo(const GroupEcho& e) {
  proto::ByteWriter w(kEchoLen);
  w.bytes(kGroupEchoMagic);
  w.u32(e.socket);
  w.u32(e.seq);
  w.u64(e.sent_us);
  std::vector<uint8_t> out = std::move(w).take();
  std::array<uint8_t, 8> nonce;
  std::memcpy(nonce.data(), &e.nonce, nonce.size());
  out.insert(out.end(), nonce.begin(), nonce.end());
  out.resize(kEchoLen, 0);
  return out;
}

std::optional<GroupEcho> decode_group_echo(std::span<const uint8_t> bytes) {
  if (bytes.size() < kEchoLen) return std::nullopt;
  proto::ByteReader r(bytes);
  std::span<const uint8_t> magic = r.bytes(kGroupEchoMagic.size());
  GroupEcho e;
  e.socket = r.u32();
  e.seq = r.u32();
  e.sent_us = r.u64();
  if (!r.ok() || !std::ranges::equal(magic, kGroupEchoMagic)) return std::nullopt;
  std::memcpy(&e.nonce, bytes.data() + 20, sizeof(e.nonce));
  return e;
}

uint64_t random_nonce() {
  static const bool ready = sodium_init() >= 0;  // once; random_echo_key() has usually run
  if (!ready) std::abort();
  uint64_t n;
  randombytes_buf(&n, sizeof(n));
  return n;
}

}  // namespace mlink::bfd
