#include <doctest/doctest.h>

#include "agent/peer_registry.h"
#include "mlink_abi.h"

using namespace mlink;
using namespace mlink::agent;

namespace {

PeerPlan node(const std::string& id, const std::string& ml) {
  PeerPlan p;
  p.key = PeerKey::of_node(id);
  p.ml_addresses = {*IpAddr::parse(ml)};
  return p;
}

std::map<PeerKey, PeerPlan> want(std::initializer_list<PeerPlan> plans) {
  std::map<PeerKey, PeerPlan> out;
  for (const auto& p : plans) out.emplace(p.key, p);
  return out;
}

}  // namespace

TEST_CASE("peer registry: ids are handed out, freed and reused") {
  PeerRegistry r(ML_MAX_PEERS);
  auto d = r.update(want({node("a", "10.88.0.2"), node("b", "10.88.0.3")}));
  REQUIRE(d.added.size() == 2);
  CHECK(r.find(PeerKey::of_node("a"))->peer_id == 0);
  CHECK(r.find(PeerKey::of_node("b"))->peer_id == 1);
  d = r.update(want({node("b", "10.88.0.3")}));
  REQUIRE(d.removed.size() == 1);
  CHECK(d.removed[0].key.id == "a");
  CHECK(d.added.empty());
  CHECK(d.changed.empty());
  d = r.update(want({node("b", "10.88.0.3"), node("c", "10.88.0.4")}));
  REQUIRE(d.added.size() == 1);
  CHECK(d.added[0].peer_id == 0);
  CHECK(r.owner_of(*IpAddr::parse("10.88.0.4"))->key.id == "c");
}

TEST_CASE("peer registry: a change of addresses is a change, the id stays") {
  PeerRegistry r(ML_MAX_PEERS);
  r.update(want({node("a", "10.88.0.2")}));
  auto d = r.update(want({node("a", "10.88.0.9")}));
  REQUIRE(d.changed.size() == 1);
  CHECK(d.changed[0].first.ml_addresses.front().str() == "10.88.0.2");
  CHECK(d.changed[0].second.peer_id == 0);
}

TEST_CASE(
    "peer registry: past the peer limit a peer is refused once, and taken when room is made") {
  PeerRegistry r(2);
  auto all = want({node("a", "10.88.0.2"), node("b", "10.88.0.3"), node("c", "10.88.0.4")});
  auto d = r.update(all);
  CHECK(d.added.size() == 2);
  REQUIRE(d.refused.size() == 1);
  CHECK(d.refused[0].id == "c");
  d = r.update(all);  // the same again: nothing new to say
  CHECK(d.refused.empty());
  CHECK(r.refused() == 1);
  d = r.update(want({node("b", "10.88.0.3"), node("c", "10.88.0.4")}));
  REQUIRE(d.added.size() == 1);
  CHECK(d.added[0].key.id == "c");
  CHECK(r.refused() == 0);
}

TEST_CASE("want_peers: static peers first, then discovered ones that claim no address in use") {
  PeerPlan s = node("x", "10.88.0.2");
  s.key = PeerKey::of_static(s.ml_addresses.front());
  auto w = want_peers({*Prefix::parse("10.88.0.1/16")}, {s},
                      {node("a", "10.88.0.1"), node("b", "10.88.0.2"), node("c", "10.88.0.3"),
                       node("d", "10.88.0.3")});
  CHECK(w.peers.size() == 2);
  CHECK(w.peers.count(PeerKey::of_static(*IpAddr::parse("10.88.0.2"))));
  CHECK(w.peers.count(PeerKey::of_node("c")));
  CHECK(w.clashing.size() == 3);
  CHECK(PeerKey::of_node("c").str() == "node:c");
  CHECK(s.key.str() == "static:10.88.0.2");
}
