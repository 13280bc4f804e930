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
