// The discovery engine's answers, driven through deliver() with no loop
// attached: nothing is sent, what would be is read back with take_queued().
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <net/if.h>

#include <map>
#include <set>

#include "discovery/discovery.h"

using namespace mlink;

namespace {

const topo::Key kKey{1, [] {
                       topo::KeyBytes k{};
                       for (size_t i = 0; i < k.size(); i++) k[i] = static_cast<uint8_t>(i * 7);
                       return k;
                     }()};
constexpr uint64_t kEpoch = uint64_t{1000} << 32;
constexpr int kLo = 1;  // loopback: the groups are joined there, nothing is sent

struct Node {
  std::string id;
  IpAddr addr;
  uint64_t seq = kEpoch;
};

std::vector<uint8_t> hello_from(Node& n, std::vector<std::string> seen, uint16_t flags = 0) {
  topo::Hello h;
  h.ml_addrs = {*Prefix::parse("10.88.1.1/16")};
  h.link_addrs = {Prefix{n.addr, 16}};
  h.seen = std::move(seen);
  h.hold_ms = 3500;
  auto b = topo::encode(topo::Message{flags, 0, ++n.seq, n.id, h}, kKey);
  REQUIRE(b.ok());
  return *b;
}

std::unique_ptr<discovery::Discovery> make(std::vector<std::string>* changed) {
  discovery::Options o;
  o.cfg.enabled = true;
  o.cfg.port = 0;  // an ephemeral port: nothing listens for it, and it never collides
  o.cfg.keys = {{1, std::vector<uint8_t>(kKey.bytes.begin(), kKey.bytes.end())}};
  o.node_id = "a";
  o.ml_addrs = {*Prefix::parse("10.88.0.1/16")};
  discovery::ProtocolLink l;
  l.device = "lo";
  l.ifindex = kLo;
  l.addresses = {*Prefix::parse("10.0.0.1/16")};
  o.links = {{0, l}};
  auto d = discovery::Discovery::create(std::move(o), [changed](const std::vector<std::string>& c) {
    changed->insert(changed->end(), c.begin(), c.end());
  });
  REQUIRE_MESSAGE(d.ok(), d.error().message);
  return std::move(*d);
}

struct Sent {
  IpAddr dst;
  topo::Message m;
};

std::vector<Sent> decode_all(std::vector<discovery::Outgoing> out) {
  std::vector<Sent> v;
  topo::KeyRing ring{{kKey.id, kKey.bytes}};
  for (auto& o : out) {
    auto d = topo::decode(o.bytes, ring);
    REQUIRE(std::holds_alternative<topo::Message>(d));
    CHECK(o.src == *IpAddr::parse("10.0.0.1"));
    v.push_back({o.dst, std::get<topo::Message>(d)});
  }
  return v;
}

}  // namespace

TEST_CASE("discovery: a segment of 100 nodes is two-way after one round trip of unicast answers") {
  std::vector<std::string> changed;
  auto d = make(&changed);
  std::vector<Node> nodes;
  for (int k = 0; k < 100; k++)
    nodes.push_back({fmt::format("n{:03}", k),
                     *IpAddr::parse(fmt::format("10.0.{}.{}", k / 200, k % 200 + 2))});
  // Each node's first multicast HELLO: it has heard nobody yet.
  for (auto& n : nodes) d->deliver({hello_from(n, {}), n.addr, kLo}, 1000);
  auto sent = decode_all(d->take_queued());
  // Each gets a unicast HELLO naming it alone, asking for an answer (we are
  // not two-way with it yet), and our LINKS.
  std::map<IpAddr, std::vector<topo::Message>> to;
  for (auto& s : sent) to[s.dst].push_back(s.m);
  REQUIRE(to.size() == nodes.size());
  for (auto& n : nodes) {
    INFO(n.id);
    auto& msgs = to.at(n.addr);
    REQUIRE(msgs.size() == 2);
    auto* h = std::get_if<topo::Hello>(&msgs[0].body);
    REQUIRE(h);
    CHECK(h->seen == std::vector<std::string>{n.id});
    CHECK((msgs[0].flags & topo::kFlagAnswer) != 0);
    CHECK(std::holds_alternative<topo::Links>(msgs[1].body));
  }
  for (auto& n : nodes) CHECK_FALSE(d->table().nodes().at(n.id).links.at(0).two_way);
  // Each answers naming us (it is two-way with us from our unicast): all
  // become two-way, and nobody needs another answer.
  changed.clear();
  for (auto& n : nodes) d->deliver({hello_from(n, {"a"}), n.addr, kLo}, 2000);
  CHECK(d->take_queued().empty());
  for (auto& n : nodes) CHECK(d->table().nodes().at(n.id).links.at(0).two_way);
  CHECK(changed.size() == nodes.size());
}

TEST_CASE("discovery: an ANSWER request is answered, at most once per quarter hello interval") {
  std::vector<std::string> changed;
  auto d = make(&changed);
  Node n{"b", *IpAddr::parse("10.0.0.2")};
  d->deliver({hello_from(n, {}), n.addr, kLo}, 1000);
  d->deliver({hello_from(n, {"a"}), n.addr, kLo}, 2000);
  (void)d->take_queued();
  // b lost our answer and asks: it is answered, without ANSWER (we are two-way).
  d->deliver({hello_from(n, {}, topo::kFlagAnswer), n.addr, kLo}, 1'000'000);
  auto sent = decode_all(d->take_queued());
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].dst == n.addr);
  CHECK(std::get<topo::Hello>(sent[0].m.body).seen == std::vector<std::string>{"b"});
  CHECK(sent[0].m.flags == 0);
  // Asking again at once gets nothing (a node setting ANSWER on every packet
  // is answered at most 4 times per hello interval) ...
  d->deliver({hello_from(n, {}, topo::kFlagAnswer), n.addr, kLo}, 1'100'000);
  CHECK(d->take_queued().empty());
  // ... and once the gap has passed, an answer again.
  d->deliver({hello_from(n, {}, topo::kFlagAnswer), n.addr, kLo}, 1'300'000);
  CHECK(decode_all(d->take_queued()).size() == 1);
}

TEST_CASE("discovery: a restarted node (new epoch) is answered at once, with LINKS") {
  std::vector<std::string> changed;
  auto d = make(&changed);
  Node n{"b", *IpAddr::parse("10.0.0.2")};
  d->deliver({hello_from(n, {}), n.addr, kLo}, 1000);
  d->deliver({hello_from(n, {"a"}), n.addr, kLo}, 2000);
  (void)d->take_queued();
  n.seq = kEpoch + (uint64_t{1} << 32);  // the next run's epoch
  d->deliver({hello_from(n, {}), n.addr, kLo}, 3000);
  auto sent = decode_all(d->take_queued());
  REQUIRE(sent.size() == 2);
  CHECK(std::get<topo::Hello>(sent[0].m.body).seen == std::vector<std::string>{"b"});
  CHECK(sent[0].m.flags == 0);  // still two-way: the link stays while b is heard
  CHECK(std::holds_alternative<topo::Links>(sent[1].m.body));
}

// docs/PROTOCOL.md "Replay": a node whose numbers restart below what was accepted (one packet
// numbered near 2^64, or its clock stepped back) is refused only until it leaves the
// neighbour table; the old code kept its replay state until the receiver restarted.
TEST_CASE(
    "discovery: a node locked out by a huge sequence number is taken back after its hold time") {
  std::vector<std::string> changed;
  auto d = make(&changed);
  const auto stale = [&] {  // below the window: stale, not replays
    return d->counters().rejected[static_cast<size_t>(topo::Reason::Stale)];
  };
  Node n{"b", *IpAddr::parse("10.0.0.2")};
  d->deliver({hello_from(n, {"a"}), n.addr, kLo}, 1'000'000);
  REQUIRE(d->table().find("b"));
  Node bad = n;
  bad.seq = UINT64_MAX - 1;  // hello_from adds one
  d->deliver({hello_from(bad, {"a"}), bad.addr, kLo}, 1'100'000);
  // b's real packets are all stale from now on, so b is no longer heard...
  for (uint64_t t = 2'000'000; t <= 4'000'000; t += 1'000'000)
    d->deliver({hello_from(n, {"a"}), n.addr, kLo}, t);
  CHECK(stale() == 3);
  // ... and its hold time (3.5 s after the huge one) passes: it leaves the table.
  d->run_timer(4'700'000);
  CHECK_FALSE(d->table().find("b"));
  // Its next real HELLO is taken: b is back.
  d->deliver({hello_from(n, {"a"}), n.addr, kLo}, 5'000'000);
  CHECK(stale() == 3);
  REQUIRE(d->table().find("b"));
  CHECK(d->table().find("b")->links.at(0).two_way);
}

// A rotation (docs/OPERATIONS.md "Keys and rotation"): a key added by set_keys verifies, the
// send key moves, and a key removed no longer verifies.
TEST_CASE("discovery: set_keys adds a verifying key, moves the send key, removes the old one") {
  std::vector<std::string> changed;
  auto d = make(&changed);
  topo::Key two{2, {}};
  two.bytes.fill(0x5a);
  auto key_map = [](std::initializer_list<topo::Key> ks) {
    KeyMap m;
    for (const auto& k : ks) m[k.id] = std::vector<uint8_t>(k.bytes.begin(), k.bytes.end());
    return m;
  };
  Node n{"b", *IpAddr::parse("10.0.0.2")};
  auto hello_with = [&](const topo::Key& k) {
    topo::Hello h;
    h.link_addrs = {Prefix{n.addr, 16}};
    h.ml_addrs = {*Prefix::parse("10.88.1.1/16")};
    h.seen = {"a"};
    h.hold_ms = 3500;
    auto b = topo::encode(topo::Message{0, 0, ++n.seq, n.id, h}, k);
    REQUIRE(b.ok());
    return *b;
  };
  const auto unknown_key = [&] {
    return d->counters().rejected[static_cast<size_t>(topo::Reason::UnknownKey)];
  };
  d->deliver({hello_with(two), n.addr, kLo}, 1'000'000);
  CHECK(unknown_key() == 1);
  REQUIRE(d->set_keys(key_map({kKey, two}), 1).ok());  // round 1: 2 verifies, 1 signs
  CHECK(d->send_key_id() == 1);
  d->deliver({hello_with(two), n.addr, kLo}, 1'100'000);
  d->deliver({hello_with(kKey), n.addr, kLo}, 1'200'000);
  CHECK(unknown_key() == 1);
  CHECK(d->counters().rx_by_key.at(1) == 1);
  CHECK(d->counters().rx_by_key.at(2) == 1);
  REQUIRE(d->set_keys(key_map({kKey, two}), std::nullopt).ok());  // round 2: the highest signs
  CHECK(d->send_key_id() == 2);
  CHECK_FALSE(d->set_keys(key_map({two}), 1).ok());  // refused: 1 is not a key; nothing changes
  CHECK(d->send_key_id() == 2);
  REQUIRE(d->set_keys(key_map({two}), 2).ok());  // round 3
  d->deliver({hello_with(kKey), n.addr, kLo}, 1'300'000);
  CHECK(unknown_key() == 2);
}
