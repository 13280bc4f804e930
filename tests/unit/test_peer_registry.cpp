#include <doctest/doctest.h>

#include <cstdio>
#include <set>

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

namespace {

PeerPlan static_peer(const std::string& ml) {
  PeerPlan p = node("", ml);
  p.key = PeerKey::of_static(p.ml_addresses.front());
  return p;
}

std::set<std::string> kept(const PeerRegistry& r) {
  std::set<std::string> out;
  for (const auto& [key, p] : r.peers()) out.insert(key.str());
  return out;
}

}  // namespace

TEST_CASE(
    "peer registry: over the limit, statics then nodes in id order are kept, whoever came first") {
  // Arrival order differs; the kept set does not.
  PeerRegistry early(3), late(3);
  early.update(want({node("d", "10.88.0.5"), node("e", "10.88.0.6"), node("f", "10.88.0.7")}));
  auto d =
      early.update(want({node("d", "10.88.0.5"), node("e", "10.88.0.6"), node("f", "10.88.0.7"),
                         node("b", "10.88.0.3"), static_peer("10.88.9.9")}));
  // b and the static displace the last-ranked two (f, then e); nothing else moves.
  CHECK(d.added.size() == 2);
  REQUIRE(d.removed.size() == 2);
  REQUIRE(d.displaced.size() == 2);
  CHECK(d.displaced[0].id == "e");
  CHECK(d.displaced[1].id == "f");
  CHECK(d.refused.size() == 2);
  CHECK(d.changed.empty());
  CHECK(early.refused() == 2);
  CHECK(early.refusals() == 2);
  late.update(want({static_peer("10.88.9.9"), node("b", "10.88.0.3")}));
  late.update(want({node("d", "10.88.0.5"), node("e", "10.88.0.6"), node("f", "10.88.0.7"),
                    node("b", "10.88.0.3"), static_peer("10.88.9.9")}));
  std::set<std::string> want_kept = {"static:10.88.9.9", "node:b", "node:d"};
  CHECK(kept(early) == want_kept);
  CHECK(kept(late) == want_kept);
  // So too a restarted agent, which hears all at once.
  PeerRegistry restarted(3);
  restarted.update(want({node("f", "10.88.0.7"), node("b", "10.88.0.3"), node("e", "10.88.0.6"),
                         static_peer("10.88.9.9"), node("d", "10.88.0.5")}));
  CHECK(kept(restarted) == want_kept);
  // Ids stay below the limit, whatever the churn.
  for (const auto* r : {&early, &late, &restarted})
    for (const auto& [key, p] : r->peers()) CHECK(p.peer_id < 3);
}

TEST_CASE("peer registry: a refused peer is reported once, and admitted in rank order") {
  PeerRegistry r(2);
  auto all = want({node("a", "10.88.0.2"), node("b", "10.88.0.3"), node("c", "10.88.0.4"),
                   node("d", "10.88.0.5")});
  auto d = r.update(all);
  REQUIRE(d.refused.size() == 2);
  CHECK(d.displaced.empty());
  for (int i = 0; i < 3; i++) CHECK(r.update(all).refused.empty());  // no news, no log
  CHECK(r.refusals() == 2);
  // a leaves: c (not d) takes its place, with a's id.
  d = r.update(want({node("b", "10.88.0.3"), node("c", "10.88.0.4"), node("d", "10.88.0.5")}));
  REQUIRE(d.added.size() == 1);
  CHECK(d.added[0].key.id == "c");
  CHECK(d.added[0].peer_id == 0);
  CHECK(d.refused.empty());  // d was refused already
  CHECK(r.refused() == 1);
  // a returns: it ranks first, so it displaces c, which is reported again.
  d = r.update(all);
  REQUIRE(d.displaced.size() == 1);
  CHECK(d.displaced[0].id == "c");
  REQUIRE(d.refused.size() == 1);
  CHECK(d.refused[0].id == "c");
  CHECK(r.refusals() == 3);
  CHECK(r.refused() == 2);
  // A peer that stops being wanted is no longer counted as refused.
  r.update(want({node("a", "10.88.0.2"), node("b", "10.88.0.3")}));
  CHECK(r.refused() == 0);
}

TEST_CASE("peer registry: 4096 peers, ids 0..4095, the smallest free id reused") {
  PeerRegistry r(4096);
  std::map<PeerKey, PeerPlan> w;
  for (int i = 0; i < 4100; i++) {
    char id[16];
    std::snprintf(id, sizeof(id), "n%05d", i);
    PeerPlan p = node(id, "10.89." + std::to_string(i / 256) + "." + std::to_string(i % 256));
    w.emplace(p.key, p);
  }
  auto d = r.update(w);
  CHECK(d.added.size() == 4096);
  CHECK(d.refused.size() == 4);
  CHECK(d.refused.front().id == "n04096");
  std::set<uint32_t> ids;
  for (const auto& [key, p] : r.peers()) ids.insert(p.peer_id);
  CHECK(ids.size() == 4096);
  CHECK(*ids.rbegin() == 4095);
  w.erase(PeerKey::of_node("n00007"));
  w.erase(PeerKey::of_node("n00003"));
  uint32_t id3 = r.find(PeerKey::of_node("n00003"))->peer_id;
  uint32_t id7 = r.find(PeerKey::of_node("n00007"))->peer_id;
  d = r.update(w);
  REQUIRE(d.added.size() == 2);
  CHECK(d.added[0].key.id == "n04096");
  CHECK(d.added[0].peer_id == std::min(id3, id7));
  CHECK(d.added[1].peer_id == std::max(id3, id7));
}
