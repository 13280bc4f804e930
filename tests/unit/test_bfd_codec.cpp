#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "proto/bfd/codec.h"
#include "unit/hex_vectors.h"

namespace bfd = mlink::bfd;
using bfd::ControlPacket;
using bfd::Diag;
using bfd::KeyRing;
using bfd::Reject;
using bfd::State;

namespace {

const std::vector<uint8_t> kKey{'m', 'l', 'i', 'n', 'k', '-', 't',
                                'e', 's', 't', '-', 'k', 'e', 'y'};
constexpr uint8_t kKeyId = 1;

KeyRing test_ring(bool required) {
  return KeyRing{{{kKeyId, kKey}}, required};
}

std::filesystem::path vector_dir() {
  return mlink::testing::vector_dir("bfd");
}
using mlink::testing::read_hex;

struct Vector {
  std::string name;  // file name without .hex
  std::vector<uint8_t> bytes;
};

std::vector<Vector> vectors() {
  std::vector<Vector> out;
  for (const auto& e : std::filesystem::directory_iterator(vector_dir()))
    if (e.path().extension() == ".hex") out.push_back({e.path().stem().string(), read_hex(e)});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::vector<uint8_t> load(const std::string& name) {
  return read_hex(vector_dir() / (name + ".hex"));
}

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

ControlPacket up_packet() {
  ControlPacket p;
  p.state = State::Up;
  p.detect_mult = 3;
  p.my_disc = 0x11223344;
  p.your_disc = 0x55667788;
  p.desired_min_tx_us = 30000;
  p.required_min_rx_us = 30000;
  return p;
}

// decode() must reject, with this reason.
void check_reject(const std::vector<uint8_t>& bytes, const KeyRing* keys, Reject want) {
  auto r = bfd::decode(bytes, keys);
  REQUIRE_MESSAGE(std::holds_alternative<Reject>(r), "accepted, wanted " << bfd::to_string(want));
  CHECK_MESSAGE(std::get<Reject>(r) == want, "got " << bfd::to_string(std::get<Reject>(r))
                                                    << ", wanted " << bfd::to_string(want));
}

ControlPacket check_accept(const std::vector<uint8_t>& bytes, const KeyRing* keys) {
  auto r = bfd::decode(bytes, keys);
  if (auto* rej = std::get_if<Reject>(&r)) FAIL("rejected: " << bfd::to_string(*rej));
  return std::get<ControlPacket>(r);
}

constexpr Reject kAllRejects[] = {
    Reject::Truncated,
    Reject::BadVersion,
    Reject::BadLength,
    Reject::ZeroDetectMult,
    Reject::Multipoint,
    Reject::ZeroMyDisc,
    Reject::ZeroYourDiscNotDown,
    Reject::AuthMismatch,
    Reject::BadAuthType,
    Reject::BadAuthLength,
    Reject::KeyId,
    Reject::BadDigest,
    Reject::Replay,
};

}  // namespace

TEST_CASE("bfd codec: every valid vector decodes and re-encodes byte-identical") {
  auto ring = test_ring(false);
  int n = 0, signed_n = 0;
  for (const auto& v : vectors()) {
    if (starts_with(v.name, "reject_")) continue;
    CAPTURE(v.name);
    bool is_signed = starts_with(v.name, "signed_");
    auto p = check_accept(v.bytes, is_signed ? &ring : nullptr);
    CHECK(p.auth_present == is_signed);
    CHECK(p.auth.has_value() == is_signed);
    auto again =
        is_signed ? bfd::encode_signed(p, p.auth->key_id, p.auth->seq, kKey) : bfd::encode(p);
    CHECK(again == v.bytes);
    n++;
    signed_n += is_signed;
  }
  CHECK(n >= 10);
  CHECK(signed_n >= 2);
}

TEST_CASE("bfd codec: vectors decode to the fields of RFC 5880 §4.1") {
  auto down = check_accept(load("down"), nullptr);
  CHECK(down.version == 1);
  CHECK(down.state == State::Down);
  CHECK(down.diag == Diag::None);
  CHECK(down.detect_mult == 3);
  CHECK(down.my_disc == 0x11223344);
  CHECK(down.your_disc == 0);
  CHECK(down.desired_min_tx_us == 1000000);
  CHECK(down.required_min_rx_us == 1000000);
  CHECK(down.required_min_echo_rx_us == 0);
  CHECK_FALSE((down.poll || down.final || down.cpi || down.demand || down.multipoint));

  CHECK(check_accept(load("init"), nullptr).state == State::Init);
  auto up = check_accept(load("up"), nullptr);
  CHECK(up == up_packet());

  auto poll = check_accept(load("up_poll"), nullptr);
  CHECK(poll.poll);
  CHECK_FALSE(poll.final);
  auto fin = check_accept(load("up_final"), nullptr);
  CHECK(fin.final);
  CHECK_FALSE(fin.poll);

  auto cd = check_accept(load("up_cpi_demand_echo"), nullptr);
  CHECK(cd.cpi);
  CHECK(cd.demand);
  CHECK(cd.required_min_echo_rx_us == 50000);

  CHECK(check_accept(load("down_diag_control_detect_expired"), nullptr).diag ==
        Diag::ControlDetectExpired);
  CHECK(check_accept(load("down_diag_neighbor_down"), nullptr).diag == Diag::NeighborDown);
  CHECK(check_accept(load("down_diag_path_down"), nullptr).diag == Diag::PathDown);
  auto adm = check_accept(load("admin_down_diag_admin_down"), nullptr);
  CHECK(adm.state == State::AdminDown);
  CHECK(adm.diag == Diag::AdminDown);
  auto reserved = check_accept(load("down_diag_reserved"), nullptr);
  CHECK(static_cast<int>(reserved.diag) == 31);
  CHECK(std::string(bfd::to_string(reserved.diag)) == "reserved");

  // captured from FRR bfdd 8.4.4
  auto frr_down = check_accept(load("frr_down"), nullptr);
  CHECK(frr_down.state == State::Down);
  CHECK(frr_down.your_disc == 0);
  CHECK(frr_down.required_min_echo_rx_us == 50000);
  CHECK(check_accept(load("frr_init"), nullptr).state == State::Init);
  CHECK(check_accept(load("frr_up_poll"), nullptr).poll);
  CHECK(check_accept(load("frr_up_final"), nullptr).final);
  CHECK(check_accept(load("frr_up"), nullptr).desired_min_tx_us == 50000);
  CHECK(check_accept(load("frr_down_diag_control_detect_expired"), nullptr).diag ==
        Diag::ControlDetectExpired);

  auto ring = test_ring(true);
  auto s = check_accept(load("signed_up"), &ring);
  REQUIRE(s.auth);
  CHECK(s.auth->type == 5);
  CHECK(s.auth->key_id == 1);
  CHECK(s.auth->seq == 42);
  auto k = check_accept(load("signed_down_keyed_sha1"), &ring);
  REQUIRE(k.auth);
  CHECK(k.auth->type == 4);
  CHECK(k.auth->seq == 7);
}

TEST_CASE("bfd codec: every reject vector is rejected for the reason its name gives") {
  auto ring = test_ring(true);
  std::set<std::string> seen;
  for (const auto& v : vectors()) {
    if (!starts_with(v.name, "reject_")) continue;
    CAPTURE(v.name);
    auto r = bfd::decode(v.bytes, &ring);
    REQUIRE(std::holds_alternative<Reject>(r));
    std::string label = bfd::to_string(std::get<Reject>(r));
    CHECK(v.name == "reject_" + label);
    seen.insert(label);
  }
  for (auto r : kAllRejects)
    if (r != Reject::Replay) CHECK_MESSAGE(seen.count(bfd::to_string(r)), bfd::to_string(r));
}

TEST_CASE("bfd codec: a crafted packet for every reject reason") {
  auto ring = test_ring(false);
  auto required = test_ring(true);
  auto good = bfd::encode(up_packet());
  auto good_signed = bfd::encode_signed(up_packet(), kKeyId, 42, kKey);
  check_accept(good, nullptr);
  check_accept(good, &ring);
  check_accept(good_signed, &ring);

  SUBCASE("truncated") {
    check_reject({}, nullptr, Reject::Truncated);
    check_reject(std::vector<uint8_t>(good.begin(), good.end() - 1), nullptr, Reject::Truncated);
  }
  SUBCASE("bad version") {
    for (uint8_t v : {0, 2, 7}) {
      auto b = good;
      b[0] = static_cast<uint8_t>(v << 5 | (b[0] & 0x1f));
      check_reject(b, nullptr, Reject::BadVersion);
    }
  }
  SUBCASE("bad length") {
    auto b = good;
    b[3] = 23;
    check_reject(b, nullptr, Reject::BadLength);
    b[3] = 25;  // more than received
    check_reject(b, nullptr, Reject::BadLength);
    auto s = good_signed;
    s[3] = 25;  // A bit needs at least auth type and auth len
    check_reject(s, &ring, Reject::BadLength);
    s = good_signed;
    s.pop_back();  // length 52, 51 received
    check_reject(s, &ring, Reject::BadLength);
  }
  SUBCASE("zero detect mult") {
    auto p = up_packet();
    p.detect_mult = 0;
    check_reject(bfd::encode(p), nullptr, Reject::ZeroDetectMult);
  }
  SUBCASE("multipoint") {
    auto p = up_packet();
    p.multipoint = true;
    check_reject(bfd::encode(p), nullptr, Reject::Multipoint);
  }
  SUBCASE("zero my discriminator") {
    auto p = up_packet();
    p.my_disc = 0;
    check_reject(bfd::encode(p), nullptr, Reject::ZeroMyDisc);
  }
  SUBCASE("zero your discriminator is only allowed in Down and AdminDown") {
    auto p = up_packet();
    p.your_disc = 0;
    check_reject(bfd::encode(p), nullptr, Reject::ZeroYourDiscNotDown);
    p.state = State::Init;
    check_reject(bfd::encode(p), nullptr, Reject::ZeroYourDiscNotDown);
    p.state = State::Down;
    check_accept(bfd::encode(p), nullptr);
    p.state = State::AdminDown;
    check_accept(bfd::encode(p), nullptr);
  }
  SUBCASE("auth mismatch") {
    check_reject(good_signed, nullptr, Reject::AuthMismatch);  // A bit, no auth configured
    KeyRing empty;
    check_reject(good_signed, &empty, Reject::AuthMismatch);
    check_reject(good, &required, Reject::AuthMismatch);  // no A bit, key required
    KeyRing required_but_empty{{}, true};                 // never falls back to unauthenticated
    check_reject(good, &required_but_empty, Reject::AuthMismatch);
  }
  SUBCASE("bad auth type") {
    for (uint8_t t : {0, 1, 2, 3, 6, 255}) {
      auto s = good_signed;
      s[24] = t;
      check_reject(s, &ring, Reject::BadAuthType);
    }
  }
  SUBCASE("bad auth length") {
    auto s = good_signed;
    s[25] = 24;
    check_reject(s, &ring, Reject::BadAuthLength);
    s = good_signed;
    s.push_back(0);
    s[3] = 53;  // auth len 28 but the packet is longer
    check_reject(s, &ring, Reject::BadAuthLength);
    s = good_signed;
    s[3] = 48;  // packet shorter than the auth section
    check_reject(s, &ring, Reject::BadAuthLength);
  }
  SUBCASE("unknown key id") {
    check_reject(bfd::encode_signed(up_packet(), 2, 42, kKey), &ring, Reject::KeyId);
  }
  SUBCASE("bad digest") {
    const std::vector<uint8_t> wrong{'w', 'r', 'o', 'n', 'g'};
    check_reject(bfd::encode_signed(up_packet(), kKeyId, 42, wrong), &ring, Reject::BadDigest);
    auto s = good_signed;
    s[51] ^= 1;
    check_reject(s, &ring, Reject::BadDigest);
  }
  SUBCASE("replay is the caller's check on the exposed sequence number") {
    auto last = check_accept(load("signed_up"), &required);
    auto next = check_accept(load("signed_replay"), &required);  // the codec accepts it
    REQUIRE(last.auth);
    REQUIRE(next.auth);
    CHECK(next.auth->seq <= last.auth->seq);  // meticulous: must be > last accepted
    CHECK(std::string(bfd::to_string(Reject::Replay)) == "replay");
  }
}

TEST_CASE("bfd codec: a wrong key is a bad digest, a wrong key id is an unknown key id") {
  auto s = bfd::encode_signed(up_packet(), kKeyId, 1000, kKey);
  KeyRing wrong_key{{{kKeyId, {'m', 'l', 'i', 'n', 'k'}}}, true};
  check_reject(s, &wrong_key, Reject::BadDigest);
  KeyRing wrong_id{{{7, kKey}}, true};
  check_reject(s, &wrong_id, Reject::KeyId);
  KeyRing both{{{7, {'x'}}, {kKeyId, kKey}}, true};
  check_accept(s, &both);
}

TEST_CASE("bfd codec: signed round trip with the right key") {
  auto ring = test_ring(true);
  auto p = up_packet();
  p.poll = true;
  p.diag = Diag::EchoFailed;
  auto s = bfd::encode_signed(p, kKeyId, 0xfffffffe, kKey);
  REQUIRE(s.size() == bfd::kSignedLen);
  CHECK((s[1] & 0x04) != 0);  // A bit
  CHECK(s[3] == 52);
  CHECK(s[24] == 5);  // meticulous keyed SHA1
  CHECK(s[25] == 28);
  CHECK(s[26] == kKeyId);
  CHECK(s[27] == 0);
  auto q = check_accept(s, &ring);
  REQUIRE(q.auth);
  CHECK(q.auth->seq == 0xfffffffe);
  CHECK(q.auth->key_id == kKeyId);
  CHECK(std::equal(q.auth->digest.begin(), q.auth->digest.end(), s.begin() + 32));
  auto fields = q;
  fields.auth.reset();
  fields.auth_present = false;
  CHECK(fields == p);
  CHECK(bfd::encode_signed(q, q.auth->key_id, q.auth->seq, kKey) == s);
  // encode() never carries auth: A bit clear, 24 bytes
  auto plain = bfd::encode(q);
  CHECK(plain.size() == 24);
  CHECK((plain[1] & 0x04) == 0);
  CHECK(check_accept(plain, nullptr) == p);
}

TEST_CASE("bfd codec: a key longer than 20 bytes is cut to 20 on both sides") {
  std::vector<uint8_t> long_key(32, 'k'), cut(20, 'k');
  auto s = bfd::encode_signed(up_packet(), kKeyId, 1, long_key);
  KeyRing ring{{{kKeyId, cut}}, true};
  check_accept(s, &ring);
}

TEST_CASE("bfd codec: flipping any byte or bit of a signed packet is rejected") {
  auto ring = test_ring(true);
  const auto s = bfd::encode_signed(up_packet(), kKeyId, 42, kKey);
  check_accept(s, &ring);
  for (size_t i = 0; i < s.size(); i++) {
    CAPTURE(i);
    for (unsigned mask = 1; mask <= 0xff; mask++) {
      if (mask != 0xff && (mask & (mask - 1)) != 0) continue;  // single bits and the whole byte
      auto b = s;
      b[i] ^= static_cast<uint8_t>(mask);
      CHECK(std::holds_alternative<Reject>(bfd::decode(b, &ring)));
    }
  }
}

TEST_CASE("bfd codec: bytes past the length field are ignored") {
  auto b = bfd::encode(up_packet());
  b.insert(b.end(), {0xde, 0xad});
  CHECK(check_accept(b, nullptr) == up_packet());
}

TEST_CASE("bfd codec: names") {
  CHECK(std::string(bfd::to_string(State::AdminDown)) == "admin_down");
  CHECK(std::string(bfd::to_string(State::Up)) == "up");
  CHECK(std::string(bfd::to_string(Diag::ReverseConcatPathDown)) == "reverse_concat_path_down");
  std::set<std::string> labels;
  for (auto r : kAllRejects) {
    std::string l = bfd::to_string(r);
    CHECK(l != "?");
    CHECK(std::all_of(l.begin(), l.end(), [](char c) { return std::islower(c) || c == '_'; }));
    labels.insert(l);
  }
  CHECK(labels.size() == std::size(kAllRejects));
}
