#include <doctest/doctest.h>
#include <fmt/format.h>

#include <set>

#include "agent/topology.h"
#include "discovery/neighbors.h"

using namespace mlink;
using discovery::NeighborTable;

namespace {

Prefix pfx(const char* s) {
  return *Prefix::parse(s);
}

topo::Hello hello(std::vector<std::string> seen, const char* link_addr = "10.1.0.2/24") {
  topo::Hello h;
  h.ml_addrs = {pfx("10.88.0.2/16")};
  h.link_addrs = {pfx(link_addr)};
  h.seen = std::move(seen);
  h.hold_ms = 3500;
  return h;
}

constexpr uint64_t kEpoch1 = uint64_t{100} << 32, kEpoch2 = uint64_t{200} << 32;

}  // namespace

TEST_CASE("a link joins once the node sees us, and stays while it is heard") {
  NeighborTable t("a");
  auto c = t.on_hello(1, "b", kEpoch1, hello({}), 0);
  CHECK(c.new_node);
  CHECK(c.plan);  // its addresses are news
  CHECK_FALSE(t.nodes().at("b").links.at(1).two_way);
  CHECK(t.seen_page(1, 16) == std::vector<std::string>{"b"});
  CHECK(t.seen_page(0, 16).empty());
  CHECK(t.not_two_way(1) == std::vector<std::string>{"b"});
  c = t.on_hello(1, "b", kEpoch1 + 1, hello({"a"}), 1000);
  CHECK_FALSE(c.new_node);
  CHECK(c.plan);
  CHECK(t.nodes().at("b").links.at(1).two_way);
  CHECK(t.not_two_way(1).empty());
  // Nothing new: no change.
  c = t.on_hello(1, "b", kEpoch1 + 2, hello({"a"}), 2000);
  CHECK_FALSE(c.plan);
  CHECK_FALSE(c.new_node);
  // A restarted node (new epoch) cannot list us yet: the link stays, and the
  // node must hear from us at once.
  c = t.on_hello(1, "b", kEpoch2, hello({}), 3000);
  CHECK(c.new_node);
  CHECK_FALSE(c.plan);
  CHECK(t.nodes().at("b").links.at(1).two_way);
}

TEST_CASE("hold time: a silent link is forgotten, then the node") {
  NeighborTable t("a");
  t.on_hello(0, "b", kEpoch1, hello({"a"}, "10.0.0.2/24"), 0);
  t.on_hello(1, "b", kEpoch1 + 1, hello({"a"}), 1'000'000);
  CHECK(t.next_expiry() == 3'500'000);
  CHECK(t.expire(3'499'999).empty());
  CHECK(t.expire(3'500'000) == std::vector<std::string>{"b"});
  CHECK(t.nodes().at("b").links.count(0) == 0);
  CHECK(t.nodes().at("b").links.count(1) == 1);
  CHECK(t.next_expiry() == 4'500'000);
  // A newer HELLO moves the deadline.
  t.on_hello(1, "b", kEpoch1 + 2, hello({"a"}), 2'000'000);
  CHECK(t.next_expiry() == 5'500'000);
  CHECK(t.expire(4'500'000).empty());
  CHECK(t.expire(5'500'000) == std::vector<std::string>{"b"});
  CHECK(t.nodes().empty());
  CHECK_FALSE(t.next_expiry());
}

TEST_CASE("hold time is capped, so one HELLO cannot pin a node") {
  NeighborTable t("a");
  auto h = hello({});
  h.hold_ms = 0xffffffff;
  t.on_hello(0, "b", kEpoch1, h, 0);
  CHECK(t.next_expiry() == uint64_t{discovery::kMaxHoldMs} * 1000);
}

TEST_CASE("SEEN pages: successive HELLOs name every node on the link, however many") {
  NeighborTable t("a");
  std::set<std::string> all;
  for (int i = 0; i < 40; i++) {
    std::string id = fmt::format("n{:03}", i);
    all.insert(id);
    t.on_hello(1, id, kEpoch1, hello({}), 0);
  }
  t.on_hello(2, "other", kEpoch1, hello({}), 0);  // heard on another link: never on link 1's pages
  std::set<std::string> named;
  for (int page = 0; page < 3; page++) {
    auto p = t.seen_page(1, 16);
    CHECK(p.size() == 16);
    named.insert(p.begin(), p.end());
  }
  CHECK(named == all);  // 48 slots over 40 nodes: all named, the page wrapped
  CHECK(t.seen_page(2, 16) == std::vector<std::string>{"other"});
  CHECK(t.seen_page(2, 16) == std::vector<std::string>{"other"});
}

TEST_CASE("the table holds at most max_nodes; more are refused and counted") {
  NeighborTable t("a", 2);
  CHECK_FALSE(t.on_hello(0, "b", kEpoch1, hello({}), 0).refused);
  CHECK_FALSE(t.on_hello(0, "c", kEpoch1, hello({}), 0).refused);
  CHECK(t.on_hello(0, "d", kEpoch1, hello({}), 0).refused);
  CHECK(t.refused() == 1);
  CHECK(t.nodes().size() == 2);
  CHECK_FALSE(t.on_hello(1, "b", kEpoch1 + 1, hello({}), 0).refused);  // known ones still heard
}

TEST_CASE("our own hellos are ignored") {
  NeighborTable t("a");
  CHECK_FALSE(t.on_hello(0, "a", kEpoch1, hello({}), 0).new_node);
  CHECK(t.nodes().empty());
}

TEST_CASE("plan of a discovered node: shared two-way links, canonical order, agreed policy") {
  agent::Links links{
      {0, {"eth2", 4, {pfx("10.2.0.1/24"), pfx("fd00:0:0:2::1/64")}, 0, 3, false}},
      {1, {"eth0", 2, {pfx("10.0.0.1/24")}, 0, 1, false}},
      {2, {"eth1", 3, {pfx("10.1.0.1/24")}, 0, 2, false}},
      {3, {"eth9", 9, {pfx("10.9.0.1/24")}, 0, 1, false}},
  };
  discovery::Node n;
  n.id = "b";
  n.ml_addrs = {pfx("10.88.0.2/16"), pfx("fd88::2/64")};
  n.links[0] = {{pfx("10.2.0.2/24"), pfx("fd00:0:0:2::2/64")}, true, 0};
  n.links[1] = {{pfx("10.0.0.2/24")}, true, 0};
  n.links[2] = {{pfx("10.1.0.2/24")}, false, 0};  // not two-way yet
  n.links[3] = {{pfx("10.8.0.2/24")}, true, 0};   // not in our subnet of that link
  auto plan = agent::plan_discovered(n, links, agent::Spreading{});
  REQUIRE(plan);
  CHECK(plan->key.str() == "node:b");
  CHECK(plan->ml_addresses ==
        std::vector<IpAddr>{*IpAddr::parse("10.88.0.2"), *IpAddr::parse("fd88::2")});
  REQUIRE(plan->links.size() == 2);
  CHECK(plan->links[0].link == 1);  // 10.0.0.0/24 sorts before 10.2.0.0/24
  CHECK(plan->links[1].link == 0);
  CHECK(plan->links[1].nh4 == *IpAddr::parse("10.2.0.2"));
  CHECK(plan->links[1].nh6 == *IpAddr::parse("fd00:0:0:2::2"));
  CHECK(plan->links[1].weight == 3);
  CHECK(plan->links[1].id == agent::subnet_id(pfx("10.2.0.0/24")));
  // The node's LINKS: the smaller weight wins, a backup on either end is a backup.
  topo::LinkInfo eth2{{pfx("10.2.0.0/24")}, 2, false};
  topo::LinkInfo eth0{{pfx("10.0.0.0/24")}, 5, true};
  n.policy = topo::Links{{eth2, eth0}};
  plan = agent::plan_discovered(n, links, agent::Spreading{});
  REQUIRE(plan);
  CHECK(plan->links[1].weight == 2);
  CHECK(plan->links[0].weight == 1);
  CHECK(plan->links[0].backup);
  // A link taken out at run time (mlinkctl link del) is no longer planned.
  links.erase(1);
  plan = agent::plan_discovered(n, links, agent::Spreading{});
  REQUIRE(plan);
  REQUIRE(plan->links.size() == 1);
  CHECK(plan->links[0].link == 0);
  // No shared two-way link: no plan.
  n.links.erase(0);
  n.links.erase(1);
  CHECK_FALSE(agent::plan_discovered(n, links, agent::Spreading{}));
}

TEST_CASE("static plans: keyed by ML address; a via whose link is out is left out") {
  auto r = config::parse(
      "[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\"]\n"
      "[[link]]\ndevice = \"eth0\"\n[[link]]\ndevice = \"eth1\"\n"
      "[[peer]]\nml_address = [\"10.88.0.3\"]\n"
      "via = [{ device = \"eth0\", address = [\"10.0.0.3\"] },"
      " { device = \"eth1\", address = [\"10.1.0.3\"] }]\n"
      "[bfd]\nallow_unauthenticated = true\n",
      "t.toml");
  REQUIRE(r.config);
  agent::Links links{{0, {"eth0", 2, {pfx("10.0.0.1/24")}, 0, 1, false}},
                     {7, {"eth1", 3, {pfx("10.1.0.1/24")}, 0, 2, true}}};
  auto plans = agent::plan_peers(*r.config, links);
  REQUIRE(std::holds_alternative<std::vector<agent::PeerPlan>>(plans));
  auto& p = std::get<std::vector<agent::PeerPlan>>(plans);
  REQUIRE(p.size() == 1);
  CHECK(p[0].key.str() == "static:10.88.0.3");
  REQUIRE(p[0].links.size() == 2);
  CHECK(p[0].links[1].link == 7);  // link ids, not positions
  CHECK(p[0].links[1].weight == 2);
  CHECK(p[0].links[1].backup);
  links.erase(0);  // mlinkctl link del eth0
  plans = agent::plan_peers(*r.config, links);
  auto& q = std::get<std::vector<agent::PeerPlan>>(plans);
  REQUIRE(q[0].links.size() == 1);
  CHECK(q[0].links[0].link == 7);
}
