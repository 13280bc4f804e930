// The topology protocol codec against the vectors in proto/vectors/topo (made
// by an independent encoder) and crafted packets, one per rejection reason.
#include <doctest/doctest.h>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "proto/topo/codec.h"
#include "proto/topo/replay.h"
#include "unit/hex_vectors.h"

namespace fs = std::filesystem;
using namespace mlink::topo;
using mlink::Prefix;

namespace {

using Bytes = std::vector<uint8_t>;

const fs::path kVectors = mlink::testing::vector_dir("topo");

Key test_key() {
  Key k{1, {}};
  for (size_t i = 0; i < k.bytes.size(); i++) k.bytes[i] = static_cast<uint8_t>(i);
  return k;
}

KeyRing test_ring() {
  return KeyRing{{1, test_key().bytes}};
}

using mlink::testing::read_hex;

Bytes vector_bytes(const std::string& name) {
  return read_hex(kVectors / (name + ".hex"));
}

Prefix pfx(const char* text) {
  auto p = Prefix::parse(text);
  REQUIRE(p);
  return *p;
}

Message sample_hello() {
  Hello h;
  h.ml_addrs = {pfx("10.88.0.1/16"), pfx("fd88::1/64")};
  h.link_addrs = {pfx("192.168.10.1/24"), pfx("fd00:10::1/64")};
  h.hold_ms = 3000;
  h.seen = {"bravo"};
  return Message{0, 1, uint64_t{0x66000000} << 32 | 7, "alpha", h};
}

Message sample_links() {
  Links l;
  l.links = {{{pfx("192.168.10.0/24"), pfx("fd00:10::/64")}, 2, false},
             {{pfx("192.168.20.0/24")}, 1, true},
             {{pfx("fd00:30::/64")}, 1, false}};
  return Message{0, 1, uint64_t{0x66000000} << 32 | 8, "alpha", l};
}

Bytes must_encode(const Message& m, const Key& key = test_key()) {
  auto r = encode(m, key);
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  return r.value();
}

Message must_decode(const Bytes& b) {
  auto r = decode(b, test_ring());
  if (const auto* rej = std::get_if<Reject>(&r))
    FAIL(reason_name(rej->reason) << ": " << rej->detail);
  return std::get<Message>(r);
}

std::string reason_of(const Bytes& b, const KeyRing& ring = test_ring()) {
  auto r = decode(b, ring);
  if (std::holds_alternative<Message>(r)) return "accepted";
  return std::string(reason_name(std::get<Reject>(r).reason));
}

void put_u16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

// Recomputes length and MAC so only the intended defect remains.
Bytes resign(Bytes b, const Key& key = test_key()) {
  put_u16(b, 8, static_cast<uint16_t>(b.size()));
  crypto_auth(b.data() + b.size() - kMacSize, b.data(), b.size() - kMacSize, key.bytes.data());
  return b;
}

// Inserts raw TLV bytes at the end of the body of a signed packet.
Bytes with_tlv(Bytes b, const Bytes& tlv) {
  b.insert(b.end() - kMacSize, tlv.begin(), tlv.end());
  return resign(std::move(b));
}

}  // namespace

TEST_CASE("topo: every vector decodes as named and valid ones re-encode byte-identical") {
  REQUIRE(fs::is_directory(kVectors));
  int valid = 0, rejects = 0;
  for (const auto& entry : fs::directory_iterator(kVectors)) {
    if (entry.path().extension() != ".hex") continue;
    std::string name = entry.path().stem().string();
    CAPTURE(name);
    Bytes bytes = read_hex(entry.path());
    if (name.rfind("reject_", 0) == 0 && name != "reject_replay") {
      CHECK(reason_of(bytes) == name.substr(7));
      rejects++;
      continue;
    }
    Message m = must_decode(bytes);
    CHECK(must_encode(m) == bytes);
    valid++;
  }
  CHECK(valid >= 3);     // hello, links, reject_replay (decodes; the guard rejects it)
  CHECK(rejects >= 12);  // one per decode-time reason
}

TEST_CASE("topo: vectors carry what the reference encoder wrote") {
  CHECK(must_decode(vector_bytes("hello")) == sample_hello());
  CHECK(must_decode(vector_bytes("links")) == sample_links());
  CHECK(must_encode(sample_hello()) == vector_bytes("hello"));
  CHECK(must_encode(sample_links()) == vector_bytes("links"));
  Message answer = sample_hello();
  answer.flags = kFlagAnswer;
  answer.seq = uint64_t{0x66000000} << 32 | 9;
  CHECK(must_decode(vector_bytes("hello_answer")) == answer);
  Message page = must_decode(vector_bytes("hello_seen_page"));
  const auto& seen = std::get<Hello>(page.body).seen;
  REQUIRE(seen.size() == kMaxSeen);
  CHECK(seen.front() == "n00");
  CHECK(seen.back() == "n15");
}

TEST_CASE("topo: every reason name is distinct and snake_case") {
  std::vector<std::string> names;
  for (int r = 0; r <= static_cast<int>(Reason::BadAddress); r++)
    names.emplace_back(reason_name(static_cast<Reason>(r)));
  CHECK(names.size() == 13);
  for (const auto& n : names)
    CHECK(std::all_of(n.begin(), n.end(), [](char c) { return std::islower(c) || c == '_'; }));
  std::sort(names.begin(), names.end());
  CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
}

TEST_CASE("topo: header rejections") {
  Bytes good = must_encode(sample_hello());
  SUBCASE("truncated") {
    CHECK(reason_of(Bytes(good.begin(), good.begin() + kMinPacket - 1)) == "truncated");
    CHECK(reason_of(Bytes{}) == "truncated");
  }
  SUBCASE("bad_magic") {
    Bytes b = good;
    b[0] = 'X';
    CHECK(reason_of(resign(b)) == "bad_magic");
  }
  SUBCASE("bad_version") {
    Bytes b = good;
    b[4] = 0;
    CHECK(reason_of(resign(b)) == "bad_version");
  }
  SUBCASE("oversized") {
    // Pads with an unknown non-critical TLV to exactly `size` bytes.
    auto padded = [&](size_t size) {
      size_t len = size - good.size() - 4;
      // Built at its final size (GCC 12 misreads a resize of a 4-byte list as overflow).
      Bytes tlv(4 + len, 0);
      tlv[0] = 0x7f;
      tlv[1] = 0xff;
      tlv[2] = static_cast<uint8_t>(len >> 8);
      tlv[3] = static_cast<uint8_t>(len);
      return with_tlv(good, tlv);
    };
    CHECK(reason_of(padded(kMaxPacket + 1)) == "oversized");
    CHECK(reason_of(padded(kMaxPacket)) == "accepted");  // the limit itself is fine
    CHECK(reason_of(padded(65535)) == "oversized");
  }
  SUBCASE("bad_length") {
    Bytes b = good;
    b.push_back(0);  // a trailing byte the length field does not cover
    CHECK(reason_of(b) == "bad_length");
    put_u16(good, 8, static_cast<uint16_t>(good.size() - 1));
    CHECK(reason_of(good) == "bad_length");
  }
  SUBCASE("unknown_key") {
    CHECK(reason_of(good, KeyRing{{2, test_key().bytes}}) == "unknown_key");
    CHECK(reason_of(good, KeyRing{}) == "unknown_key");
  }
  SUBCASE("bad_mac: any flipped bit") {
    for (size_t i : {size_t{12}, size_t{20}, size_t{60}, good.size() - 1}) {
      Bytes b = good;
      b[i] ^= 0x10;
      CHECK(reason_of(b) == "bad_mac");
    }
  }
  SUBCASE("unknown_type") {
    Bytes b = good;
    b[5] = 3;  // reserved: LINKS_REQUEST
    CHECK(reason_of(resign(b)) == "unknown_type");
    b[5] = 0;
    CHECK(reason_of(resign(b)) == "unknown_type");
  }
  SUBCASE("bad_node_id") {
    Bytes b = good;
    b[20 + 2] = ' ';
    CHECK(reason_of(resign(b)) == "bad_node_id");
    b = good;
    b[20 + 10] = 'x';  // a character after the NUL padding began
    CHECK(reason_of(resign(b)) == "bad_node_id");
    b = good;
    std::fill(b.begin() + 20, b.begin() + 52, 0);  // empty id
    CHECK(reason_of(resign(b)) == "bad_node_id");
  }
}

TEST_CASE("topo: a wrong key changes nothing") {
  Bytes good = must_encode(sample_hello());
  Key other = test_key();
  other.bytes[31] ^= 1;
  CHECK(reason_of(good, KeyRing{{1, other.bytes}}) == "bad_mac");
  // Signed with the other key under the same id: rejected by our ring.
  CHECK(reason_of(must_encode(sample_hello(), other)) == "bad_mac");
  // Key rotation: the ring holds both, each packet verifies under its own id.
  Key next{7, other.bytes};
  KeyRing both{{1, test_key().bytes}, {7, other.bytes}};
  CHECK(reason_of(good, both) == "accepted");
  auto m = decode(must_encode(sample_hello(), next), both);
  REQUIRE(std::holds_alternative<Message>(m));
  CHECK(std::get<Message>(m).key_id == 7);
}

TEST_CASE("topo: TLV rejections") {
  Bytes hello = must_encode(sample_hello());
  SUBCASE("bad_tlv: framing") {
    CHECK(reason_of(with_tlv(hello, {0x00, 0x03, 0x00})) == "bad_tlv");             // short header
    CHECK(reason_of(with_tlv(hello, {0x00, 0x03, 0x00, 0x09, 'a'})) == "bad_tlv");  // overrun
  }
  SUBCASE("bad_tlv: value lengths and ranges") {
    CHECK(reason_of(with_tlv(hello, {0x00, 0x01, 0x00, 0x04, 10, 0, 0, 1})) == "bad_tlv");
    CHECK(reason_of(with_tlv(hello, {0x00, 0x04, 0x00, 0x04, 0, 0, 0, 1})) == "bad_tlv");  // twice
    CHECK(reason_of(with_tlv(hello, {0x00, 0x03, 0x00, 0x00})) == "bad_tlv");  // empty SEEN
  }
  SUBCASE("bad_tlv: counts") {
    Bytes b = hello;
    for (int i = 0; i < 3; i++) b = with_tlv(b, {0x00, 0x01, 0x00, 0x05, 32, 10, 88, 0, 9});
    CHECK(reason_of(b) == "bad_tlv");  // 5 ML_ADDR, limit 4
    b = hello;
    for (size_t i = 0; i < kMaxTlvs; i++) b = with_tlv(b, {0x7f, 0x00, 0x00, 0x00});
    CHECK(reason_of(b) == "bad_tlv");  // 64 + 6 TLVs
  }
  SUBCASE("bad_tlv: required TLVs") {
    Message m = sample_hello();
    std::get<Hello>(m.body).seen.clear();
    Bytes b = must_encode(m);
    // Drop the HOLD_TIME TLV (the last one now) and re-sign.
    b.erase(b.end() - kMacSize - 8, b.end() - kMacSize);
    CHECK(reason_of(resign(b)) == "bad_tlv");
    Message l = sample_links();
    std::get<Links>(l.body).links.clear();
    CHECK_FALSE(encode(l, test_key()).ok());
  }
  SUBCASE("unknown TLVs: skipped unless critical") {
    CHECK(reason_of(with_tlv(hello, {0x7f, 0x00, 0x00, 0x02, 1, 2})) == "accepted");
    CHECK(must_decode(with_tlv(hello, {0x7f, 0x00, 0x00, 0x00})) == sample_hello());
    CHECK(reason_of(with_tlv(hello, {0x80, 0x42, 0x00, 0x00})) == "unknown_critical_tlv");
    // A LINKS TLV in a HELLO is unknown there.
    CHECK(reason_of(with_tlv(hello, {0x00, 0x10, 0x00, 0x00})) == "accepted");
  }
  SUBCASE("bad_node_id in SEEN") {
    CHECK(reason_of(with_tlv(hello, {0x00, 0x03, 0x00, 0x02, 'a', '.'})) == "bad_node_id");
  }
  SUBCASE("bad_address") {
    auto ml = [&](std::initializer_list<uint8_t> v) {
      Bytes tlv = {0x00, 0x01, 0x00, static_cast<uint8_t>(v.size())};
      tlv.insert(tlv.end(), v);
      return with_tlv(hello, tlv);
    };
    CHECK(reason_of(ml({33, 10, 0, 0, 1})) == "bad_address");     // prefix length
    CHECK(reason_of(ml({0, 10, 0, 0, 1})) == "bad_address");      // /0
    CHECK(reason_of(ml({32, 0, 0, 0, 0})) == "bad_address");      // unspecified
    CHECK(reason_of(ml({32, 127, 0, 0, 1})) == "bad_address");    // loopback
    CHECK(reason_of(ml({32, 224, 0, 0, 200})) == "bad_address");  // multicast
  }
}

TEST_CASE("topo: LINKS subnet rules") {
  Message m = sample_links();
  auto& links = std::get<Links>(m.body).links;
  SUBCASE("host bits set") {
    links[0].subnets[0] = pfx("192.168.10.1/24");
    CHECK_FALSE(encode(m, test_key()).ok());
  }
  SUBCASE("one subnet on two links") {
    links[1].subnets.push_back(pfx("fd00:30::/64"));
    auto r = encode(m, test_key());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("bad_address") != std::string::npos);
  }
  SUBCASE("weight 0") {
    links[2].weight = 0;
    CHECK_FALSE(encode(m, test_key()).ok());
  }
  SUBCASE("bad family code") {
    Bytes b = must_encode(sample_links());
    b[kHeaderSize + 6] = 5;  // first subnet's family
    CHECK(reason_of(resign(b)) == "bad_address");
  }
}

TEST_CASE("topo: LINK flags carry backup (bit 0) and drain (bit 1), both ways") {
  Message m = sample_links();
  auto& links = std::get<Links>(m.body).links;
  links[0].drain = true;
  links[1].backup = true;
  links[1].drain = true;
  Bytes b = must_encode(m);
  CHECK(must_decode(b) == m);
  CHECK(b[kHeaderSize + 5] == 0x02);  // the first LINK's flags byte
}

TEST_CASE("topo: encode refuses what a receiver would reject") {
  Message m = sample_hello();
  auto& h = std::get<Hello>(m.body);
  SUBCASE("node id") {
    m.node_id = std::string(33, 'a');
    CHECK_FALSE(encode(m, test_key()).ok());
    m.node_id = "";
    CHECK_FALSE(encode(m, test_key()).ok());
  }
  SUBCASE("limits") {
    h.seen.assign(kMaxSeen + 1, "x");
    CHECK_FALSE(encode(m, test_key()).ok());
  }
  SUBCASE("the largest HELLO and LINKS fit in one unfragmented datagram") {
    h.ml_addrs.assign(kMaxMlAddrs, pfx("fd88::1/64"));
    h.link_addrs.assign(kMaxLinkAddrs, pfx("fd00:10::1/64"));
    h.seen.assign(kMaxSeen, std::string(kNodeIdSize, 'n'));
    CHECK(must_encode(m).size() <= kMaxPacket);
    Message l = sample_links();
    auto& links = std::get<Links>(l.body).links;
    links.clear();
    for (size_t i = 0; i < kMaxLinks; i++) {
      LinkInfo info;
      for (size_t j = 0; j < kMaxSubnets; j++) {
        auto p = pfx("fd00::/64");
        p.addr.bytes[2] = static_cast<uint8_t>(i);
        p.addr.bytes[3] = static_cast<uint8_t>(j);
        info.subnets.push_back(p);
      }
      links.push_back(info);
    }
    Bytes b = must_encode(l);
    CHECK(b.size() <= kMaxPacket);
    CHECK(must_decode(b) == l);
  }
  SUBCASE("flags are kept") {
    m.flags = 0x8001;
    CHECK(must_decode(must_encode(m)).flags == 0x8001);
  }
}

TEST_CASE("topo: ReplayGuard") {
  ReplayGuard g;
  const uint64_t e1 = uint64_t{0x66000000} << 32;
  SUBCASE("old and repeated numbers are rejected") {
    CHECK(g.accept("alpha", 1, e1 | 10));
    CHECK_FALSE(g.accept("alpha", 1, e1 | 10));
    CHECK(g.accept("alpha", 1, e1 | 11));
    CHECK_FALSE(g.accept("alpha", 1, e1 | 10));
  }
  SUBCASE("window: reordered packets within 64 accepted once") {
    using V = ReplayGuard::Verdict;
    CHECK(g.accept("alpha", 1, e1 | 100));
    CHECK(g.accept("alpha", 1, e1 | 99));
    CHECK(g.accept("alpha", 1, e1 | 37));              // 63 behind
    CHECK(g.judge("alpha", 1, e1 | 36) == V::Stale);   // 64 behind: seen or not
    CHECK(g.judge("alpha", 1, e1 | 99) == V::Replay);  // seen
    CHECK(g.judge("alpha", 1, e1 | 98) == V::Fresh);   // not yet
    CHECK_FALSE(g.accept("alpha", 1, e1 | 99));
    CHECK(g.accept("alpha", 1, e1 | 170));        // jump clears the window
    CHECK_FALSE(g.accept("alpha", 1, e1 | 100));  // now 70 behind
    CHECK(g.accept("alpha", 1, e1 | 169));
  }
  SUBCASE("a restart's new epoch is accepted, the old epoch no longer") {
    CHECK(g.accept("alpha", 1, e1 | 5000));
    const uint64_t e2 = uint64_t{0x66000100} << 32;
    CHECK(g.accept("alpha", 1, e2 | 0));
    CHECK_FALSE(g.accept("alpha", 1, e1 | 5001));
  }
  SUBCASE("state is per node and per key id") {
    CHECK(g.accept("alpha", 1, e1 | 10));
    CHECK(g.accept("bravo", 1, e1 | 10));
    CHECK(g.accept("alpha", 2, e1 | 10));
    CHECK(g.size() == 3);
    g.forget("alpha");
    CHECK(g.size() == 1);
    CHECK(g.accept("alpha", 1, e1 | 10));
  }
  SUBCASE("the replay vector") {
    Message first = must_decode(vector_bytes("hello"));
    Message again = must_decode(vector_bytes("reject_replay"));
    CHECK(g.accept(first.node_id, first.key_id, first.seq));
    CHECK(g.accept(again.node_id, again.key_id, again.seq));
    CHECK_FALSE(g.accept(again.node_id, again.key_id, again.seq));
    CHECK_FALSE(g.accept(first.node_id, first.key_id, first.seq));
  }
}

TEST_CASE("topo: Sequencer numbers increase across counter wrap and restart") {
  Sequencer s(0x66000000);
  uint64_t a = s.next(0x66000000);
  uint64_t b = s.next(0x66000000);
  CHECK(a == uint64_t{0x66000000} << 32);
  CHECK(b == a + 1);
  // A restart a second later starts above everything the first run sent.
  Sequencer later(0x66000001);
  CHECK(later.next(0x66000001) > b);
}
