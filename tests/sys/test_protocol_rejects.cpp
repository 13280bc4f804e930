// The receive paths of both protocols on real sockets: crafted datagrams sent from the link
// peer's namespace across a veth, one per rejection reason, each dropped and counted under its
// reason while nothing else changes (no neighbour, no replay state, no session state); a
// datagram that did not arrive with TTL / hop limit 255 is dropped and counted; and a valid
// packet is accepted, proving the setup could accept at all (docs/PROTOCOL.md; RFC 5880
// §6.7.3, §6.8.6; RFC 5881 §5).
//
// This process (host A) sits in a private netns with the agent side (Discovery or Liveness)
// on its end of veth "rj0", 10.79.0.1/24 and fd79::1/64, driven by a fresh sd-event loop;
// host B is a named netns at 10.79.0.2 / fd79::2 that sends the crafted packets.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "agent/liveness.h"
#include "bfd/transport.h"
#include "discovery/discovery.h"
#include "proto/bfd/codec.h"
#include "proto/bfd/echo.h"
#include "proto/topo/codec.h"
#include "sys/link_bed.h"
#include "sys/netns.h"

using namespace mlink;
using namespace mlink::testing;

namespace {

constexpr uint16_t kBfdSourcePort = 49999;  // RFC 5881 §4: 49152..65535

using Loop = EventLoop;

// ---- topology protocol ---------------------------------------------------------------------

constexpr size_t kOffType = 5;
constexpr size_t kOffLength = 8;
constexpr size_t kOffKeyId = 10;
constexpr size_t kOffNodeId = 20;

topo::Key test_key(topo::KeyId id, uint8_t first) {
  topo::Key k{id, {}};
  for (size_t i = 0; i < k.bytes.size(); i++) k.bytes[i] = static_cast<uint8_t>(first + i);
  return k;
}

const topo::Key kTopoKey = test_key(1, 0x00);       // the vectors' key: 00 01 .. 1f
const topo::Key kWrongTopoKey = test_key(1, 0x80);  // same id, other bytes

constexpr uint64_t kEpoch = uint64_t{1000} << 32;

topo::Message hello_from_b(uint64_t seq) {
  topo::Hello h;
  h.ml_addrs = {*Prefix::parse("10.88.0.2/16")};
  h.link_addrs = {*Prefix::parse("10.79.0.2/24")};
  h.hold_ms = 60'000;
  return topo::Message{0, 0, seq, "b", h};
}

Bytes topo_bytes(const topo::Message& m, const topo::Key& k = kTopoKey) {
  auto b = topo::encode(m, k);
  REQUIRE_MESSAGE(b.ok(), b.error().message);
  return *b;
}

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

// A valid packet, changed by edit (given the bytes before the MAC), then with the length field
// made right again and signed with key: one defect, behind a MAC that verifies.
Bytes resigned(const Bytes& valid, const std::function<void(Bytes&)>& edit,
               const topo::Key& k = kTopoKey, int length_off_by = 0) {
  Bytes b(valid.begin(), valid.end() - topo::kMacSize);
  edit(b);
  put16(b, kOffLength, static_cast<uint16_t>(int(b.size() + topo::kMacSize) + length_off_by));
  Bytes mac(topo::kMacSize);
  crypto_auth(mac.data(), b.data(), b.size(), k.bytes.data());
  b.insert(b.end(), mac.begin(), mac.end());
  return b;
}

// What a rejected packet must not touch, as text to compare.
std::string table_text(const discovery::NeighborTable& t) {
  std::ostringstream o;
  for (const auto& [id, n] : t.nodes()) {
    o << id << " epoch " << n.epoch << " ml";
    for (const auto& p : n.ml_addrs) o << " " << p.str();
    for (const auto& [li, l] : n.links) {
      o << " link " << li << (l.two_way ? " two-way" : "") << " until " << l.expires_us;
      for (const auto& p : l.link_addrs) o << " " << p.str();
    }
    o << (n.policy ? " policy" : "") << ";";
  }
  return o.str();
}

// Counters without tx / tx_errors (the agent's own HELLOs go out meanwhile).
std::string rx_counters(const discovery::Counters& c) {
  std::ostringstream o;
  for (size_t r = 0; r < topo::kReasonCount; r++)
    o << topo::reason_name(static_cast<topo::Reason>(r)) << "=" << c.rejected[r] << " ";
  o << "bad_hop_limit=" << c.bad_hop_limit << " not_a_link=" << c.not_a_link
    << " rx_hello=" << c.rx_hello << " rx_links=" << c.rx_links;
  return o.str();
}

struct TopoBed {
  Bed bed;
  Loop loop;
  std::unique_ptr<discovery::Discovery> d;
  int changes = 0;

  TopoBed() {
    discovery::Options o;
    o.cfg.enabled = true;
    o.cfg.keys = {{1, std::vector<uint8_t>(kTopoKey.bytes.begin(), kTopoKey.bytes.end())}};
    o.node_id = "a";
    o.ml_addrs = {*Prefix::parse("10.88.0.1/16")};
    discovery::ProtocolLink l;
    l.device = "rj0";
    l.ifindex = bed.ifindex;
    l.addresses = {*Prefix::parse(std::string(kLocal4) + "/24"),
                   *Prefix::parse(std::string(kLocal6) + "/64")};
    o.links = {{0, l}};
    auto created = discovery::Discovery::create(
        std::move(o), [this](const std::vector<std::string>&) { changes++; });
    REQUIRE_MESSAGE(created.ok(), created.error().message);
    d = std::move(*created);
    auto st = d->attach(loop.e);
    REQUIRE_MESSAGE(st.ok(), st.error().message);
  }
};

}  // namespace

TEST_CASE("topology protocol: every rejection on the wire is counted by reason, changes nothing") {
  TopoBed t;
  auto& d = *t.d;
  const uint16_t port = topo::kDefaultPort;
  auto peer4 = t.bed.peer_socket(kPeer4, 0);
  auto peer6 = t.bed.peer_socket(kPeer6, 0);

  // Sends bytes from B and waits until the one counter `which` says it has been dealt with;
  // then every other receive counter, the table and the agent's view are as before.
  auto expect = [&](const std::string& what, const Bytes& bytes, auto counter, int ttl = 255,
                    Udp* from = nullptr, const char* to = kLocal4) {
    INFO(what);
    auto before = d.counters();
    auto table_before = table_text(d.table());
    int changes_before = t.changes;
    (from ? *from : *peer4).send(to, port, bytes, ttl);
    auto want = before;
    counter(want)++;
    CHECK(t.loop.run_until([&] {
      auto now = d.counters();
      return counter(now) == counter(want);
    }));
    t.loop.run_for(milliseconds(50));
    CHECK(rx_counters(d.counters()) == rx_counters(want));
    CHECK(table_text(d.table()) == table_before);
    CHECK(t.changes == changes_before);
  };
  auto rejected = [](topo::Reason r) {
    return [r](discovery::Counters& c) -> uint64_t& { return c.rejected[static_cast<size_t>(r)]; };
  };
  auto hop_limit = [](discovery::Counters& c) -> uint64_t& { return c.bad_hop_limit; };

  // B's one valid HELLO, accepted last. Every authenticated reject below carries a higher
  // sequence number: had any of them reached the replay window, that HELLO would be a replay.
  const uint64_t valid_seq = kEpoch + 1;
  const Bytes valid = topo_bytes(hello_from_b(valid_seq));
  uint64_t seq = kEpoch + 1000;
  auto next = [&] { return topo_bytes(hello_from_b(seq++)); };

  using R = topo::Reason;
  expect("truncated", Bytes(valid.begin(), valid.begin() + topo::kMinPacket - 1),
         rejected(R::Truncated));
  expect("bad_magic", resigned(next(), [](Bytes& b) { b[0] = 'X'; }), rejected(R::BadMagic));
  expect("bad_version", resigned(next(), [](Bytes& b) { b[4] = 2; }), rejected(R::BadVersion));
  {
    // 1300 bytes, more than kMaxPacket: an unknown non-critical TLV pads a valid HELLO. The
    // socket cuts it at kMaxPacket + 1, which is still too long.
    Bytes big = resigned(next(), [](Bytes& b) {
      size_t pad = 1300 - topo::kMacSize - b.size() - 4;
      b.push_back(0x00), b.push_back(0x7f);
      b.push_back(static_cast<uint8_t>(pad >> 8)), b.push_back(static_cast<uint8_t>(pad));
      b.resize(b.size() + pad, 0);
    });
    REQUIRE(big.size() == 1300);
    expect("oversized", big, rejected(R::Oversized));
  }
  expect("bad_length",
         resigned(
             next(), [](Bytes&) {}, kTopoKey, 4),
         rejected(R::BadLength));
  expect("unknown_key",
         resigned(
             next(), [](Bytes& b) { put16(b, kOffKeyId, 2); }, test_key(2, 0x40)),
         rejected(R::UnknownKey));
  // A wrong key: key id 1, other bytes.
  expect("bad_mac (a wrong key)", topo_bytes(hello_from_b(seq++), kWrongTopoKey),
         rejected(R::BadMac));
  expect("unknown_type", resigned(next(), [](Bytes& b) { b[kOffType] = 3; }),
         rejected(R::UnknownType));
  expect("bad_node_id", resigned(next(), [](Bytes& b) { b[kOffNodeId + 1] = '!'; }),
         rejected(R::BadNodeId));
  // A TLV whose length runs past the body.
  expect("bad_tlv",
         resigned(next(),
                  [](Bytes& b) {
                    b.insert(b.end(), {0x00, 0x7f, 0x00, 0x10});
                  }),
         rejected(R::BadTlv));
  expect("unknown_critical_tlv",
         resigned(next(),
                  [](Bytes& b) {
                    b.insert(b.end(), {0x80, 0x7f, 0x00, 0x00});
                  }),
         rejected(R::UnknownCriticalTlv));
  // The first TLV is ML_ADDR 10.88.0.2/16 (type, length, prefix length, address): loopback.
  expect("bad_address",
         resigned(next(),
                  [](Bytes& b) {
                    REQUIRE(b[topo::kHeaderSize + 1] == 0x01);
                    const uint8_t lo[] = {127, 0, 0, 1};
                    std::memcpy(&b[topo::kHeaderSize + 5], lo, 4);
                  }),
         rejected(R::BadAddress));

  // Valid but from farther than one hop: dropped before decoding, IPv4 and IPv6.
  expect("TTL 64", next(), hop_limit, 64);
  expect("hop limit 64", next(), hop_limit, 64, peer6.get(), kLocal6);
  expect("TTL 254", next(), hop_limit, 254);

  // Nothing above reached the table, the replay window or the agent.
  CHECK(d.table().nodes().empty());
  CHECK(t.changes == 0);

  // Arrived on a device that is no link (loopback, from this host, TTL 255).
  {
    auto before = d.counters();
    Udp self("127.0.0.1", 0);
    self.send("127.0.0.1", port, next());
    CHECK(t.loop.run_until([&] { return d.counters().not_a_link == before.not_a_link + 1; }));
    auto want = before;
    want.not_a_link++;
    CHECK(rx_counters(d.counters()) == rx_counters(want));
    CHECK(d.table().nodes().empty());
  }

  // The valid HELLO, with the lowest sequence number of all: accepted.
  {
    auto before = d.counters();
    peer4->send(kLocal4, port, valid);
    CHECK(t.loop.run_until([&] { return d.counters().rx_hello == before.rx_hello + 1; }));
    auto want = before;
    want.rx_hello++;
    CHECK(rx_counters(d.counters()) == rx_counters(want));
    REQUIRE(d.table().nodes().count("b") == 1);
    CHECK(d.table().nodes().at("b").links.count(0) == 1);
  }
  // The same bytes again: a replay, which changes nothing (not the hold time either).
  expect("replay", valid, rejected(R::Replay));
  // A valid HELLO numbered kWindow below it (the previous epoch): stale, whether it was
  // seen or not; it changes nothing either.
  expect("stale", topo_bytes(hello_from_b(valid_seq - topo::ReplayGuard::kWindow)),
         rejected(R::Stale));
  // The node is known now: a wrong key still changes nothing.
  expect("bad_mac after the node is known", topo_bytes(hello_from_b(seq++), kWrongTopoKey),
         rejected(R::BadMac));

  // Every reason has been seen on the wire exactly once (bad_mac twice).
  auto c = d.counters();
  for (size_t r = 0; r < topo::kReasonCount; r++) {
    CAPTURE(topo::reason_name(static_cast<topo::Reason>(r)));
    CHECK(c.rejected[r] == (static_cast<R>(r) == R::BadMac ? 2u : 1u));
  }
  CHECK(c.bad_hop_limit == 3);
}

// ---- BFD -----------------------------------------------------------------------------------

namespace {

const Bytes kBfdKey = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                       0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x02, 0x03, 0x04, 0x05};
const Bytes kWrongBfdKey = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                            0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x02, 0x03, 0x04, 0x06};

// B's packet while its session is Down: it has not heard from us yet.
bfd::ControlPacket bfd_down() {
  bfd::ControlPacket p;
  p.state = bfd::State::Down;
  p.detect_mult = 3;
  p.my_disc = 0x0b0b0b0b;
  p.your_disc = 0;
  p.desired_min_tx_us = 1'000'000;
  p.required_min_rx_us = 1'000'000;
  return p;
}

Bytes sign(const bfd::ControlPacket& p, uint32_t seq, uint8_t key_id = 1,
           const Bytes& key = kBfdKey) {
  return bfd::encode_signed(p, key_id, seq, key);
}

}  // namespace

TEST_CASE("BFD: every rejection on the wire is counted by reason, the session does not move") {
  Bed bed;
  Loop loop;
  agent::Liveness::Options o;
  o.cfg.keys = {{1, kBfdKey}};
  o.cfg.echo = false;
  std::vector<bfd::Transition> transitions;
  auto l = agent::Liveness::create(
      o, [&](agent::Liveness::Id, const bfd::Transition& tr) { transitions.push_back(tr); });
  agent::Liveness::Target target{"rj0", *IpAddr::parse(kLocal4), *IpAddr::parse(kPeer4),
                                 "b via rj0"};
  auto id = l->add(target);
  REQUIRE_MESSAGE(id.ok(), id.error().message);
  REQUIRE(l->attach(loop.e).ok());
  const auto& session = l->session(*id);

  auto tx = bed.peer_socket(kPeer4, kBfdSourcePort);
  auto rx = bed.peer_socket(kPeer4, bfd::kControlPort);  // what our agent sends to B
  bfd::KeyRing ring;
  ring.keys[1] = kBfdKey;
  ring.required = true;
  // What the agent sent to B since the last call, decoded (all of it must verify).
  auto sent_to_b = [&] {
    std::vector<bfd::ControlPacket> out;
    for (const auto& b : rx->receive_all()) {
      auto r = bfd::decode(b, &ring);
      REQUIRE(std::holds_alternative<bfd::ControlPacket>(r));
      out.push_back(std::get<bfd::ControlPacket>(r));
    }
    return out;
  };

  auto expect = [&](const std::string& what, const Bytes& bytes, size_t index, int ttl = 255) {
    INFO(what);
    auto before = l->rejected();
    auto state = session.state();
    auto rx_packets = session.rx_packets();
    auto unmatched = l->rx_unmatched();
    size_t n_transitions = transitions.size();
    tx->send(kLocal4, bfd::kControlPort, bytes, ttl);
    auto want = before;
    want[index]++;
    CHECK(loop.run_until([&] { return l->rejected()[index] == want[index]; }));
    loop.run_for(milliseconds(50));
    CHECK(l->rejected() == want);
    CHECK(session.state() == state);
    CHECK(session.rx_packets() == rx_packets);
    CHECK(l->rx_unmatched() == unmatched);
    CHECK(transitions.size() == n_transitions);
  };
  auto idx = [](bfd::Reject r) { return static_cast<size_t>(r); };
  using J = bfd::Reject;

  // B's one valid packet (sequence number 1000), accepted after the rejects. Every packet
  // below that verifies carries a higher number: had any reached the replay check, 1000 would
  // be a replay.
  const Bytes valid = sign(bfd_down(), 1000);
  uint32_t seq = 5000;
  auto signed_with = [&](const std::function<void(bfd::ControlPacket&)>& edit) {
    auto p = bfd_down();
    edit(p);
    return sign(p, seq++);
  };
  // Signed, then one byte changed (only for checks made before the digest's).
  auto patched = [&](size_t at, uint8_t v) {
    Bytes b = sign(bfd_down(), seq++);
    b[at] = v;
    return b;
  };

  expect("truncated", Bytes(valid.begin(), valid.begin() + 23), idx(J::Truncated));
  expect("bad_version", patched(0, 2 << 5), idx(J::BadVersion));
  expect("bad_length: more than received", patched(3, 60), idx(J::BadLength));
  expect("bad_length: < 26 with A", patched(3, 24), idx(J::BadLength));
  expect("zero_detect_mult", signed_with([](auto& p) { p.detect_mult = 0; }),
         idx(J::ZeroDetectMult));
  expect("multipoint", signed_with([](auto& p) { p.multipoint = true; }), idx(J::Multipoint));
  expect("zero_my_disc", signed_with([](auto& p) { p.my_disc = 0; }), idx(J::ZeroMyDisc));
  expect("zero_your_disc_not_down", signed_with([](auto& p) { p.state = bfd::State::Up; }),
         idx(J::ZeroYourDiscNotDown));
  expect("auth_mismatch: unauthenticated while a key is configured", bfd::encode(bfd_down()),
         idx(J::AuthMismatch));
  expect("bad_auth_type: simple password (1)", patched(bfd::kHeaderLen, 1), idx(J::BadAuthType));
  // Keyed SHA1 (4) verifies, but the session is configured for Meticulous Keyed SHA1 (5).
  expect("bad_auth_type: keyed SHA1 (4), not meticulous", signed_with([](auto& p) {
           p.auth = bfd::Auth{};
           p.auth->type = static_cast<uint8_t>(bfd::AuthType::KeyedSha1);
         }),
         idx(J::BadAuthType));
  expect("bad_auth_length", patched(bfd::kHeaderLen + 1, 24), idx(J::BadAuthLength));
  expect("unknown_key_id", sign(bfd_down(), seq++, 2), idx(J::KeyId));
  expect("bad_digest (a wrong key)", sign(bfd_down(), seq++, 1, kWrongBfdKey), idx(J::BadDigest));
  expect("bad_digest: a bit flipped after signing", patched(12, 0x7f), idx(J::BadDigest));
  expect("TTL 254", sign(bfd_down(), seq++), agent::Liveness::kBadHopLimit, 254);
  expect("TTL 64", sign(bfd_down(), seq++), agent::Liveness::kBadHopLimit, 64);

  // Through all of that the session stayed Down, and so did every packet it sent to B.
  CHECK(session.state() == bfd::State::Down);
  CHECK(session.rx_packets() == 0);
  CHECK(transitions.empty());
  loop.run_for(milliseconds(100));
  for (const auto& p : sent_to_b()) CHECK(p.state == bfd::State::Down);

  // The valid packet, with the lowest sequence number of all: Down -> Init, and we tell B.
  tx->send(kLocal4, bfd::kControlPort, valid);
  REQUIRE(loop.run_until([&] { return !transitions.empty(); }));
  CHECK(transitions.size() == 1);
  CHECK(transitions[0].from == bfd::State::Down);
  CHECK(transitions[0].to == bfd::State::Init);
  CHECK(session.state() == bfd::State::Init);
  CHECK(session.rx_packets() == 1);
  CHECK(session.remote_disc() == bfd_down().my_disc);
  bool told_b = false;
  CHECK(loop.run_until([&] {
    for (const auto& p : sent_to_b())
      if (p.state == bfd::State::Init && p.your_disc == bfd_down().my_disc) told_b = true;
    return told_b;
  }));

  // Meticulous: the same sequence number again, or a lower one, is a replay, and the session
  // stays in Init (a replayed packet must not count as received either).
  expect("replay: the same packet again", valid, idx(J::Replay));
  expect("replay: a lower sequence number", sign(bfd_down(), 999), idx(J::Replay));
  CHECK(session.state() == bfd::State::Init);

  // Every reason of bfd::Reject has been seen on the wire.
  auto r = l->rejected();
  for (size_t i = 0; i < agent::Liveness::kRejects; i++) {
    CAPTURE(i);
    CHECK(r[i] >= 1);
  }
  CHECK(l->rx_unmatched() == 0);
}

// RFC 5880 §6.7.3 on the wire: B's numbers are accepted only in the window RcvAuthSeq+1 ..
// +3×DetectMult, in Down as in Init (the old code forgot the last number on Down, so a
// recorded packet could be replayed), and a restarted agent carries on both windows: B's
// recorded packets stay replays, and our own numbers go on from where they stopped (each
// session has its own, one up per packet).
TEST_CASE("BFD: the Meticulous sequence window holds in every state and across a restart") {
  Bed bed;
  Loop loop;
  char dir[] = "/tmp/mlink-authseq-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string state = std::string(dir) + "/bfd.json";
  agent::Liveness::Options o;
  o.cfg.keys = {{1, kBfdKey}};
  o.cfg.echo = false;
  o.state_path = state;
  agent::Liveness::Target target{"rj0", *IpAddr::parse(kLocal4), *IpAddr::parse(kPeer4),
                                 "b via rj0"};
  auto tx = bed.peer_socket(kPeer4, kBfdSourcePort);
  auto rx = bed.peer_socket(kPeer4, bfd::kControlPort);
  bfd::KeyRing ring;
  ring.keys[1] = kBfdKey;
  ring.required = true;
  std::vector<uint32_t> our_seqs;  // the numbers of what the agent sent to B
  auto read_sent = [&] {
    for (const auto& b : rx->receive_all()) {
      auto r = bfd::decode(b, &ring);
      REQUIRE(std::holds_alternative<bfd::ControlPacket>(r));
      our_seqs.push_back(std::get<bfd::ControlPacket>(r).auth->seq);
    }
  };

  auto run_agent = [&](auto&& body) {
    std::vector<bfd::Transition> transitions;
    auto l = agent::Liveness::create(
        o, [&](agent::Liveness::Id, const bfd::Transition& tr) { transitions.push_back(tr); });
    auto id = l->add(target);
    REQUIRE_MESSAGE(id.ok(), id.error().message);
    REQUIRE(l->attach(loop.e).ok());
    const auto replay = static_cast<size_t>(bfd::Reject::Replay);
    // Sends one packet; true when it was accepted, false when refused as a replay.
    auto send = [&](const Bytes& bytes) {
      auto rejected = l->rejected()[replay];
      auto received = l->session(*id).rx_packets();
      tx->send(kLocal4, bfd::kControlPort, bytes);
      REQUIRE(loop.run_until([&] {
        return l->rejected()[replay] > rejected || l->session(*id).rx_packets() > received;
      }));
      return l->session(*id).rx_packets() > received;
    };
    body(*l, *id, send, transitions);
    loop.run_for(milliseconds(50));
    read_sent();
    l->forget_state();  // a clean stop
  };

  bfd::ControlPacket down = bfd_down();
  bfd::ControlPacket admin_down = bfd_down();
  admin_down.state = bfd::State::AdminDown;
  run_agent([&](agent::Liveness& l, agent::Liveness::Id id, auto& send, auto& transitions) {
    CHECK(send(sign(down, 1000)));  // the first number sets the window: Down -> Init
    CHECK(l.session(id).state() == bfd::State::Init);
    CHECK_FALSE(send(sign(down, 1010)));  // +10 > 3 × 3
    CHECK(send(sign(down, 1009)));        // +9: the edge of the window
    CHECK_FALSE(send(sign(down, 1009)));
    CHECK(send(sign(admin_down, 1010)));  // B says AdminDown: Init -> Down
    REQUIRE(!transitions.empty());
    CHECK(transitions.back().to == bfd::State::Down);
    // Down: the recorded first packet again. The old code took it (Down -> Init).
    CHECK_FALSE(send(sign(down, 1000)));
    CHECK(l.session(id).state() == bfd::State::Down);
  });
  REQUIRE(our_seqs.size() >= 2);
  for (size_t i = 1; i < our_seqs.size(); i++) CHECK(our_seqs[i] == our_seqs[i - 1] + 1);
  const uint32_t last_sent = our_seqs.back();
  our_seqs.clear();

  // The next agent, from the state file the clean stop left.
  run_agent([&](agent::Liveness& l, agent::Liveness::Id id, auto& send, auto&) {
    CHECK_FALSE(send(sign(down, 1010)));  // accepted by the previous agent: still a replay
    CHECK_FALSE(send(sign(down, 1000)));
    CHECK(send(sign(down, 1011)));
    CHECK(l.session(id).state() == bfd::State::Init);
  });
  REQUIRE(!our_seqs.empty());
  CHECK(our_seqs.front() == last_sent + 1);  // in B's window: no gap, no jump
  for (size_t i = 1; i < our_seqs.size(); i++) CHECK(our_seqs[i] == our_seqs[i - 1] + 1);
  std::remove(state.c_str());
  rmdir(dir);
}

// Issue 12: echoes carry a tag under the agent's own key (proto/bfd/echo.h). An on-link host
// that knows the layout, the session's discriminator and the link addresses forges an echo of
// a dead link; the old code took it as proof (echo Active). Now it is refused and counted, and
// only our own echo, reflected unchanged, makes echo active. B plays the peer without a
// datapath: its socket on 3785 receives our echoes and B sends them back by hand.
TEST_CASE("BFD echo: a forged echo proves nothing, our own reflected echo does") {
  Bed bed;
  Loop loop;
  agent::Liveness::Options o;  // no keys: the forgery needs none, and the tag needs none
  std::vector<bfd::Transition> transitions;
  auto l = agent::Liveness::create(
      o, [&](agent::Liveness::Id, const bfd::Transition& tr) { transitions.push_back(tr); });
  agent::Liveness::Target target{"rj0", *IpAddr::parse(kLocal4), *IpAddr::parse(kPeer4),
                                 "b via rj0"};
  auto id = l->add(target);
  REQUIRE_MESSAGE(id.ok(), id.error().message);
  REQUIRE(l->attach(loop.e).ok());
  auto tx = bed.peer_socket(kPeer4, kBfdSourcePort);
  auto reflector = bed.peer_socket(kPeer4, bfd::kEchoPort);

  // The three-way handshake, B advertising that it reflects echoes.
  bfd::ControlPacket p = bfd_down();
  p.required_min_echo_rx_us = 30'000;
  tx->send(kLocal4, bfd::kControlPort, bfd::encode(p));
  REQUIRE(loop.run_until([&] { return l->session(*id).state() == bfd::State::Init; }));
  p.state = bfd::State::Up;
  p.your_disc = l->session(*id).my_disc();
  tx->send(kLocal4, bfd::kControlPort, bfd::encode(p));
  REQUIRE(loop.run_until([&] { return l->session(*id).state() == bfd::State::Up; }));

  // Our first echo reaches B's 3785.
  std::vector<std::pair<Bytes, uint16_t>> echoes;
  REQUIRE(loop.run_until([&] {
    auto got = reflector->receive_all_from();
    echoes.insert(echoes.end(), got.begin(), got.end());
    return !echoes.empty();
  }));
  const auto& [ours, port] = echoes.front();
  REQUIRE(ours.size() == bfd::kEchoLen);
  CHECK_FALSE(l->echo_active(*id));

  // The forgery: our bytes with a later sequence number; the tag cannot follow.
  Bytes forged = ours;
  forged[11] ^= 0x40;
  const auto bad_tag = static_cast<size_t>(bfd::EchoReject::BadTag);
  reflector->send(kLocal4, port, forged);
  REQUIRE(loop.run_until([&] { return l->echo_refused()[bad_tag] == 1; }));
  // And the untagged layout of the old code, a fresh echo as the forger would write it.
  Bytes untagged = ours;
  std::fill(untagged.begin() + bfd::kEchoTagOffset, untagged.end(), 0);
  reflector->send(kLocal4, port, untagged);
  REQUIRE(loop.run_until([&] { return l->echo_refused()[bad_tag] == 2; }));
  loop.run_for(milliseconds(20));
  CHECK_FALSE(l->echo_active(*id));
  CHECK(l->session(*id).state() == bfd::State::Up);

  // Our own echo, sent back unchanged as a reflector does: echo is active.
  reflector->send(kLocal4, port, ours);
  CHECK(loop.run_until([&] { return l->echo_active(*id); }));
  CHECK(l->echo_refused()[bad_tag] == 2);
  CHECK(l->echo_refused()[static_cast<size_t>(bfd::EchoReject::NotOurs)] == 0);
}

// A session removed at run time and added again over the same pair (mlinkctl link del/add, a
// device deleted and made anew) goes on with its sequence numbers: a fresh random start would
// be outside the peer's window, refused for twice its detection time (seconds, with echo).
TEST_CASE("BFD: a session removed and added again goes on with its sequence numbers") {
  Bed bed;
  Loop loop;
  agent::Liveness::Options o;
  o.cfg.keys = {{1, kBfdKey}};
  o.cfg.echo = false;
  auto l = agent::Liveness::create(o, [](agent::Liveness::Id, const bfd::Transition&) {});
  REQUIRE(l->attach(loop.e).ok());
  agent::Liveness::Target target{"rj0", *IpAddr::parse(kLocal4), *IpAddr::parse(kPeer4),
                                 "b via rj0"};
  auto rx = bed.peer_socket(kPeer4, bfd::kControlPort);
  bfd::KeyRing ring;
  ring.keys[1] = kBfdKey;
  ring.required = true;
  std::vector<uint32_t> seqs;
  auto read_sent = [&] {
    for (const auto& b : rx->receive_all()) {
      auto r = bfd::decode(b, &ring);
      REQUIRE(std::holds_alternative<bfd::ControlPacket>(r));
      seqs.push_back(std::get<bfd::ControlPacket>(r).auth->seq);
    }
    return !seqs.empty();
  };
  auto id = l->add(target);
  REQUIRE(id.ok());
  REQUIRE(loop.run_until(read_sent));
  l->remove(*id);  // Down: nothing more is sent
  read_sent();
  const uint32_t last = seqs.back();
  seqs.clear();
  auto again = l->add(target);
  REQUIRE(again.ok());
  REQUIRE(loop.run_until(read_sent));
  CHECK(seqs.front() == last + 1);
}
