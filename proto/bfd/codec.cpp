#include "proto/bfd/codec.h"

// SHA-1 comes from OpenSSL libcrypto: libsodium (used elsewhere) has no SHA-1, and RFC 5880
// Keyed SHA1 needs exactly that. Only this file uses libcrypto.
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>

#include "proto/common/bytes.h"

namespace mlink::bfd {
namespace {

using proto::ByteReader;
using proto::ByteWriter;

// Byte 0: Vers(3) Diag(5). Byte 1: Sta(2) P F C A D M. RFC 5880 §4.1.
constexpr unsigned kVersionShift = 5;
constexpr uint8_t kDiagMask = 0x1f;
constexpr unsigned kStateShift = 6;
constexpr uint8_t kPoll = 1u << 5;
constexpr uint8_t kFinal = 1u << 4;
constexpr uint8_t kCpi = 1u << 3;
constexpr uint8_t kAuth = 1u << 2;
constexpr uint8_t kDemand = 1u << 1;
constexpr uint8_t kMultipoint = 1u << 0;
constexpr size_t kMinAuthLen = kHeaderLen + 2;  // A bit: at least Auth Type and Auth Len
constexpr size_t kDigestOffset = kHeaderLen + 8;

// The mandatory section (§4.1), `len` in its Length field.
void put_header(ByteWriter& w, const ControlPacket& p, bool auth, size_t len) {
  w.u8(static_cast<uint8_t>((p.version & 0x7) << kVersionShift |
                            (static_cast<uint8_t>(p.diag) & kDiagMask)));
  w.u8(static_cast<uint8_t>((static_cast<uint8_t>(p.state) & 0x3) << kStateShift |
                            (p.poll ? kPoll : 0) | (p.final ? kFinal : 0) | (p.cpi ? kCpi : 0) |
                            (auth ? kAuth : 0) | (p.demand ? kDemand : 0) |
                            (p.multipoint ? kMultipoint : 0)));
  w.u8(p.detect_mult);
  w.u8(static_cast<uint8_t>(len));
  w.u32(p.my_disc);
  w.u32(p.your_disc);
  w.u32(p.desired_min_tx_us);
  w.u32(p.required_min_rx_us);
  w.u32(p.required_min_echo_rx_us);
}

// §6.7.4: SHA1 over the whole packet with the key, zero padded to 20 bytes, in the digest field.
std::array<uint8_t, 20> keyed_sha1(std::span<const uint8_t> packet, std::span<const uint8_t> key) {
  std::array<uint8_t, kSignedLen> buf{};
  std::copy_n(packet.begin(), kSignedLen, buf.begin());
  std::fill_n(buf.begin() + kDigestOffset, 20, 0);
  std::copy_n(key.begin(), std::min(key.size(), kMaxKeyLen), buf.begin() + kDigestOffset);
  std::array<uint8_t, 20> md{};
  unsigned md_len = 0;
  // Cannot fail for SHA1 short of a broken libcrypto; a zero digest would never verify anyway.
  // Fetched once: EVP_sha1() makes OpenSSL 3 look the implementation up again on every call
  // (EVP_MD_fetch), a fifth of the agent's CPU at 4,000 sessions.
  static EVP_MD* const sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  if (!sha1 || EVP_Digest(buf.data(), buf.size(), md.data(), &md_len, sha1, nullptr) != 1 ||
      md_len != md.size())
    std::abort();
  OPENSSL_cleanse(buf.data(), buf.size());
  return md;
}

}  // namespace

const char* to_string(State s) {
  switch (s) {
    case State::AdminDown:
      return "admin_down";
    case State::Down:
      return "down";
    case State::Init:
      return "init";
    case State::Up:
      return "up";
  }
  return "?";
}

const char* to_string(Diag d) {
  switch (d) {
    case Diag::None:
      return "none";
    case Diag::ControlDetectExpired:
      return "control_detect_expired";
    case Diag::EchoFailed:
      return "echo_failed";
    case Diag::NeighborDown:
      return "neighbor_down";
    case Diag::ForwardingReset:
      return "forwarding_reset";
    case Diag::PathDown:
      return "path_down";
    case Diag::ConcatPathDown:
      return "concat_path_down";
    case Diag::AdminDown:
      return "admin_down";
    case Diag::ReverseConcatPathDown:
      return "reverse_concat_path_down";
  }
  return "reserved";
}

const char* to_string(Reject r) {
  switch (r) {
    case Reject::Truncated:
      return "truncated";
    case Reject::BadVersion:
      return "bad_version";
    case Reject::BadLength:
      return "bad_length";
    case Reject::ZeroDetectMult:
      return "zero_detect_mult";
    case Reject::Multipoint:
      return "multipoint";
    case Reject::ZeroMyDisc:
      return "zero_my_disc";
    case Reject::ZeroYourDiscNotDown:
      return "zero_your_disc_not_down";
    case Reject::AuthMismatch:
      return "auth_mismatch";
    case Reject::BadAuthType:
      return "bad_auth_type";
    case Reject::BadAuthLength:
      return "bad_auth_length";
    case Reject::KeyId:
      return "unknown_key_id";
    case Reject::BadDigest:
      return "bad_digest";
    case Reject::Replay:
      return "replay";
  }
  return "?";
}

std::vector<uint8_t> encode(const ControlPacket& p) {
  ByteWriter w(kHeaderLen);
  put_header(w, p, false, kHeaderLen);
  return std::move(w).take();
}

std::vector<uint8_t> encode_signed(ControlPacket p, uint8_t key_id, uint32_t seq,
                                   std::span<const uint8_t> key) {
  uint8_t type = static_cast<uint8_t>(AuthType::MeticulousKeyedSha1);
  if (p.auth && p.auth->type == static_cast<uint8_t>(AuthType::KeyedSha1)) type = p.auth->type;
  ByteWriter w(kSignedLen);
  put_header(w, p, true, kSignedLen);
  w.u8(type);
  w.u8(static_cast<uint8_t>(kSha1AuthLen));
  w.u8(key_id);
  w.u8(0);  // reserved
  w.u32(seq);
  w.zeros(kSignedLen - kDigestOffset);  // digest: over the packet with the key in its place
  w.put_bytes_at(kDigestOffset, keyed_sha1(w.view(), key));
  return std::move(w).take();
}

DecodeResult decode(std::span<const uint8_t> bytes, const KeyRing* keys) {
  if (bytes.size() < kHeaderLen) return Reject::Truncated;
  ByteReader r(bytes);
  ControlPacket p;
  uint8_t vers_diag = r.u8();
  uint8_t flags = r.u8();
  p.version = vers_diag >> kVersionShift;
  p.diag = static_cast<Diag>(vers_diag & kDiagMask);
  p.state = static_cast<State>(flags >> kStateShift);
  p.poll = flags & kPoll;
  p.final = flags & kFinal;
  p.cpi = flags & kCpi;
  p.auth_present = flags & kAuth;
  p.demand = flags & kDemand;
  p.multipoint = flags & kMultipoint;
  p.detect_mult = r.u8();
  size_t len = r.u8();
  p.my_disc = r.u32();
  p.your_disc = r.u32();
  p.desired_min_tx_us = r.u32();
  p.required_min_rx_us = r.u32();
  p.required_min_echo_rx_us = r.u32();

  if (p.version != 1) return Reject::BadVersion;
  if (len < (p.auth_present ? kMinAuthLen : kHeaderLen) || len > bytes.size())
    return Reject::BadLength;
  if (p.detect_mult == 0) return Reject::ZeroDetectMult;
  if (p.multipoint) return Reject::Multipoint;
  if (p.my_disc == 0) return Reject::ZeroMyDisc;
  if (p.your_disc == 0 && p.state != State::Down && p.state != State::AdminDown)
    return Reject::ZeroYourDiscNotDown;
  // A key ring that is required but empty accepts nothing rather than falling back to no auth.
  if (p.auth_present && (keys == nullptr || keys->keys.empty())) return Reject::AuthMismatch;
  if (!p.auth_present && keys != nullptr && keys->required) return Reject::AuthMismatch;
  if (!p.auth_present) return p;

  // The checks above leave at least Auth Type and Auth Len in `bytes`, and all 52 bytes once
  // the length is kSignedLen.
  Auth a;
  a.type = r.u8();
  if (a.type != static_cast<uint8_t>(AuthType::KeyedSha1) &&
      a.type != static_cast<uint8_t>(AuthType::MeticulousKeyedSha1))
    return Reject::BadAuthType;
  if (r.u8() != kSha1AuthLen || len != kSignedLen) return Reject::BadAuthLength;
  a.key_id = r.u8();
  r.skip(1);  // reserved: ignored on receipt (§4.4)
  a.seq = r.u32();
  std::span<const uint8_t> digest = r.bytes(a.digest.size());
  if (!r.ok()) return Reject::BadAuthLength;  // cannot happen after the length checks
  std::copy(digest.begin(), digest.end(), a.digest.begin());
  auto key = keys->keys.find(a.key_id);
  if (key == keys->keys.end()) return Reject::KeyId;
  auto md = keyed_sha1(bytes.first(kSignedLen), key->second);
  if (CRYPTO_memcmp(md.data(), a.digest.data(), md.size()) != 0) return Reject::BadDigest;
  p.auth = a;
  return p;
}

}  // namespace mlink::bfd
