// The agent's decisions (LinkSetController) driven by netlink, BFD and
// discovery events against fakes of the datapath, the neighbour table and
// BFD: each case checks the number and content of the map writes.
#include <doctest/doctest.h>
#include <net/if.h>

#include <algorithm>
#include <memory>

#include "agent/controller.h"
#include "fakes.h"

#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000
#endif

using namespace mlink;
using namespace mlink::agent;
using mlink::testing::FakeDatapath;

namespace {

IpAddr ip(const std::string& s) {
  return *IpAddr::parse(s);
}
Prefix pfx(const std::string& s) {
  return *Prefix::parse(s);
}
constexpr unsigned kUp = IFF_UP | IFF_LOWER_UP;

// Three links, eth<i> with 10.<i>.0.1/16 on ifindex 10+i. Host h is
// 10.88.0.h and has 10.<i>.0.h on link i.
struct Bed {
  FakeDatapath dp;
  testing::FakeNeighbours nb;
  testing::FakeSessions bfd;
  uint64_t now = 1'000'000'000;
  std::vector<nlohmann::json> events;
  std::unique_ptr<LinkSetController> c;

  explicit Bed(bool with_bfd = true, uint32_t max_peers = ML_MAX_PEERS) {
    ControllerDeps d{dp,
                     nb,
                     with_bfd ? &bfd : nullptr,
                     [this](nlohmann::json e) { events.push_back(std::move(e)); },
                     [this] { return now; },
                     max_peers};
    c = std::make_unique<LinkSetController>(std::move(d), std::vector{pfx("10.88.0.1/16")},
                                            Spreading{});
    Links links;
    for (int i = 0; i < 3; i++)
      links.emplace(i, LocalLink{"eth" + std::to_string(i),
                                 10 + i,
                                 {pfx("10." + std::to_string(i) + ".0.1/16")},
                                 kUp});
    c->set_links(links);
  }

  static PeerPlan peer(int h, const std::vector<size_t>& via) {
    PeerPlan p;
    p.ml_addresses = {ip("10.88.0." + std::to_string(h))};
    p.key = PeerKey::of_static(p.ml_addresses.front());
    for (size_t i : via) {
      PeerLink pl;
      pl.link = i;
      pl.subnet = pfx("10." + std::to_string(i) + ".0.0/16");
      pl.id = subnet_id(pl.subnet);
      pl.nh4 = ip("10." + std::to_string(i) + ".0." + std::to_string(h));
      p.links.push_back(pl);
    }
    return p;
  }

  // Every session Up, as BFD would report it.
  void all_up() {
    for (auto& [id, t] : bfd.live) {
      if (bfd.infos.at(id).up) continue;
      bfd.set_up(id, true);
      c->on_transition(id, {bfd::State::Down, bfd::State::Up, bfd::Diag::None, now});
    }
  }
};

unsigned buckets_on(const ml_peer& v, unsigned slot) {
  return static_cast<unsigned>(std::count(std::begin(v.buckets), std::end(v.buckets), slot));
}

std::vector<std::string> written_addresses(const std::vector<FakeDatapath::Write>& w) {
  std::vector<std::string> out;
  for (const auto& x : w) out.push_back(x.addr.str() + (x.value ? "" : " deleted"));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("controller: a link's carrier loss rewrites exactly the peers that use it") {
  Bed b;
  b.c->set_static_plans({Bed::peer(2, {0, 1}), Bed::peer(3, {0, 1, 2}), Bed::peer(4, {1, 2})});
  b.c->sync({}, "start");
  CHECK(b.dp.take().size() == 3);  // one new entry each, every slot down until BFD says Up
  CHECK(b.bfd.live.size() == 7);
  b.all_up();
  auto up = b.dp.take();
  CHECK(up.size() == 7);  // one rewrite per session that came up
  REQUIRE(b.dp.peers.count(ip("10.88.0.3")));
  for (unsigned s = 0; s < 3; s++) CHECK(b.dp.peers[ip("10.88.0.3")].slots[s].state == ML_SLOT_UP);
  b.nb.log.clear();
  b.events.clear();

  b.c->on_netlink(nl::LinkEvent{10, "eth0", IFF_UP, false});  // eth0 loses carrier
  b.c->after_netlink("netlink event");
  b.c->after_rewrite("netlink event");
  auto w = b.dp.take();
  CHECK(written_addresses(w) == std::vector<std::string>{"10.88.0.2", "10.88.0.3"});
  const ml_peer& p2 = *w[0].value;
  const ml_peer& p3 = *w[1].value;
  CHECK(p2.slots[0].state == ML_SLOT_DOWN);
  CHECK(p2.slots[1].state == ML_SLOT_UP);
  CHECK(buckets_on(p2, 1) == ML_BUCKETS);
  CHECK(p3.slots[0].state == ML_SLOT_DOWN);
  CHECK(buckets_on(p3, 0) == 0);
  CHECK(buckets_on(p3, 1) + buckets_on(p3, 2) == ML_BUCKETS);
  // The link's neighbour entries are renewed (freeing what they hold), no other.
  CHECK(b.nb.log == std::vector<std::string>{"del 10.0.0.2@10", "add 10.0.0.2@10",
                                             "del 10.0.0.3@10", "add 10.0.0.3@10"});
  REQUIRE(b.events.size() == 3);  // the device, then each peer's link
  CHECK(b.events[0]["type"] == "device");
  CHECK(b.events[0]["state"] == "down");
  CHECK(b.events[1]["type"] == "link");
  CHECK(b.events[1]["state"] == "down");

  b.c->on_netlink(nl::LinkEvent{10, "eth0", kUp, false});  // back
  b.c->after_netlink("netlink event");
  b.c->after_rewrite("netlink event");
  w = b.dp.take();
  CHECK(written_addresses(w) == std::vector<std::string>{"10.88.0.2", "10.88.0.3"});
  CHECK(buckets_on(*w[0].value, 0) == ML_BUCKETS / 2);

  // A neighbour entry of eth2 failing takes only that next hop's slot out.
  b.c->on_netlink(nl::NeighEvent{12, ip("10.2.0.4"), NUD_FAILED, false});
  b.c->on_netlink(nl::NeighEvent{12, ip("10.2.0.99"), NUD_FAILED, false});  // not ours
  b.c->after_netlink("netlink event");
  b.c->after_rewrite("netlink event");
  w = b.dp.take();
  REQUIRE(w.size() == 1);
  CHECK(w[0].addr == ip("10.88.0.4"));
  CHECK(w[0].value->slots[1].state == ML_SLOT_DOWN);
  CHECK(buckets_on(*w[0].value, 0) == ML_BUCKETS);
}

TEST_CASE("controller: a discovered peer joins and leaves") {
  Bed b;
  discovery::Node node;
  node.id = "b";
  node.ml_addrs = {pfx("10.88.0.5/16")};
  node.links[0] = {{pfx("10.0.0.5/16")}, true, 0};
  node.links[1] = {{pfx("10.1.0.5/16")}, true, 0};
  node.links[2] = {{pfx("10.2.0.5/16")}, false, 0};  // not two-way yet: not used
  std::map<std::string, discovery::Node> heard{{"b", node}};

  b.c->sync(b.c->plan_nodes(heard), "discovery");
  auto w = b.dp.take();
  REQUIRE(w.size() == 1);
  CHECK(w[0].addr == ip("10.88.0.5"));
  CHECK(w[0].value->peer_id == 0);
  CHECK(w[0].value->nslots == 2);
  CHECK(w[0].value->slots[0].ifindex == 10);
  CHECK(w[0].value->slots[1].ifindex == 11);
  CHECK(b.nb.log == std::vector<std::string>{"add 10.0.0.5@10", "add 10.1.0.5@11"});
  CHECK(b.bfd.live.size() == 2);
  REQUIRE(b.events.size() == 3);  // the peer, then its two links (down until BFD is Up)
  CHECK(b.events[0]["state"] == "new");
  CHECK(b.events[1]["type"] == "link");
  CHECK(b.events[0]["key"] == "node:b");

  b.all_up();
  CHECK(b.dp.take().size() == 2);
  CHECK(buckets_on(b.dp.peers[ip("10.88.0.5")], 0) == ML_BUCKETS / 2);

  // Discovery hears it again, unchanged: nothing is written.
  b.c->sync(b.c->plan_nodes(heard), "discovery");
  CHECK(b.dp.take().empty());

  b.nb.log.clear();
  b.c->sync({}, "discovery");  // its hellos stopped
  w = b.dp.take();
  REQUIRE(w.size() == 1);
  CHECK(w[0].addr == ip("10.88.0.5"));
  CHECK_FALSE(w[0].value);
  CHECK(b.nb.log == std::vector<std::string>{"del 10.0.0.5@10", "del 10.1.0.5@11"});
  CHECK(b.bfd.live.empty());
  CHECK(b.bfd.removed.size() == 2);
  CHECK(b.events.back()["state"] == "gone");

  // The next node gets the freed peer id.
  node.id = "c";
  node.ml_addrs = {pfx("10.88.0.6/16")};
  b.c->sync(b.c->plan_nodes({{"c", node}}), "discovery");
  w = b.dp.take();
  REQUIRE(w.size() == 1);
  CHECK(w[0].value->peer_id == 0);
}

TEST_CASE("controller: a node claiming an ML address in use is no peer") {
  Bed b;
  b.c->set_static_plans({Bed::peer(2, {0})});
  discovery::Node mine, theirs;
  mine.id = "m";
  mine.ml_addrs = {pfx("10.88.0.1/16")};  // this node's
  mine.links[0] = {{pfx("10.0.0.7/16")}, true, 0};
  theirs = mine;
  theirs.id = "t";
  theirs.ml_addrs = {pfx("10.88.0.2/16")};  // the static peer's
  b.c->sync(b.c->plan_nodes({{"m", mine}, {"t", theirs}}), "discovery");
  CHECK(b.c->registry().peers().size() == 1);
  CHECK(written_addresses(b.dp.take()) == std::vector<std::string>{"10.88.0.2"});
}

TEST_CASE("controller: without BFD carrier and neighbour decide alone") {
  Bed b(false);
  b.c->set_static_plans({Bed::peer(2, {0, 1})});
  b.c->sync({}, "start");
  auto w = b.dp.take();
  REQUIRE(w.size() == 1);
  CHECK(w[0].value->slots[0].state == ML_SLOT_UP);
  CHECK(w[0].value->slots[1].state == ML_SLOT_UP);
}

TEST_CASE("controller: a repaired link waits out its hold-down") {
  Bed b;
  b.c->set_static_plans({Bed::peer(2, {0, 1})});
  b.c->sync({}, "start");
  b.all_up();
  b.dp.take();
  auto id = b.bfd.id_of("10.0.0.2");
  b.bfd.set_up(id, false);
  b.c->on_transition(id, {bfd::State::Up, bfd::State::Down, bfd::Diag::ControlDetectExpired, 0});
  auto w = b.dp.take();
  REQUIRE(w.size() == 1);
  CHECK(w[0].value->slots[0].state == ML_SLOT_DOWN);
  b.now += 10'000;
  b.bfd.set_up(id, true);
  b.c->on_transition(id, {bfd::State::Down, bfd::State::Up, bfd::Diag::None, 0});
  CHECK(b.dp.take().empty());  // held down for 500 ms
  b.now += 499'000;
  b.c->rebalance();
  CHECK(b.dp.take().empty());
  b.now += 2'000;
  b.c->rebalance();
  w = b.dp.take();
  REQUIRE(w.size() == 1);
  CHECK(w[0].value->slots[0].state == ML_SLOT_UP);
}

TEST_CASE("controller: a rebalance pass reads the busy peers and a tenth of the others") {
  Bed b;
  std::vector<PeerPlan> plans;
  for (int h = 2; h < 202; h++) {
    auto p = Bed::peer(h, {0, 1});
    p.ml_addresses.front() =
        ip("10.88." + std::to_string(h / 200) + "." + std::to_string(h % 200 + 2));
    p.key = PeerKey::of_static(p.ml_addresses.front());
    for (size_t i = 0; i < p.links.size(); i++)
      p.links[i].nh4 = ip("10." + std::to_string(i) + "." + std::to_string(h / 200) + "." +
                          std::to_string(h % 200 + 2));
    plans.push_back(p);
  }
  b.c->set_static_plans(plans);
  b.c->sync({}, "start");
  b.all_up();
  b.dp.take();
  b.dp.stats_read_ids.clear();
  REQUIRE(b.c->registry().peers().size() == 200);
  // Peer id 7 carries packets: it is looked at in every pass from then on.
  b.dp.stats[7].bucket_packets[3] = 100;
  std::map<int, int> reads;
  for (int pass = 0; pass < 10; pass++) {
    b.dp.stats_reads = 0;
    b.c->rebalance();
    reads[pass] = b.dp.stats_reads;
    b.dp.stats[7].bucket_packets[3] += 100;
  }
  // 21 idle peers a pass (200 / 10 + 1), plus the busy one once it was seen.
  for (int pass = 0; pass < 10; pass++) CHECK(reads[pass] <= 22);
  CHECK(b.dp.stats_read_ids.size() == 200);  // in ten passes (a second) every peer was looked at
  CHECK(b.dp.take().empty());                // nothing moved, nothing held: no rewrite
}

TEST_CASE("controller: restart adoption keeps inherited entries until relearned") {
  Bed b;
  ml_peer inherited{};
  inherited.nslots = 2;
  inherited.slots[0].state = inherited.slots[1].state = ML_SLOT_UP;
  ml_peer stale = inherited;
  b.c->adopt({{ip("10.88.0.2"), inherited}, {ip("10.88.0.9"), stale}});
  b.c->set_static_plans({Bed::peer(2, {0, 1})});
  b.c->sync({}, "start");
  CHECK(b.dp.take().empty());  // ours has no proven link yet: the inherited one forwards

  auto first = b.bfd.id_of("10.0.0.2");
  b.bfd.set_up(first, true);
  b.c->on_transition(first, {bfd::State::Down, bfd::State::Up, bfd::Diag::None, 0});
  CHECK(b.dp.take().empty());  // one of two: still worse than what it has

  auto second = b.bfd.id_of("10.1.0.2");
  b.bfd.set_up(second, true);
  b.c->on_transition(second, {bfd::State::Down, bfd::State::Up, bfd::Diag::None, 0});
  auto w = b.dp.take();
  REQUIRE(w.size() == 1);
  CHECK(w[0].addr == ip("10.88.0.2"));
  CHECK(buckets_on(*w[0].value, 0) == ML_BUCKETS / 2);

  b.c->end_adoption();  // the grace period is over: what nobody relearned goes
  w = b.dp.take();
  REQUIRE(w.size() == 1);
  CHECK(w[0].addr == ip("10.88.0.9"));
  CHECK_FALSE(w[0].value);
}

TEST_CASE("controller: at the end of adoption a known peer's entry is rewritten, not deleted") {
  Bed b;
  ml_peer inherited{};
  inherited.nslots = 1;
  inherited.slots[0].state = ML_SLOT_UP;
  b.c->adopt({{ip("10.88.0.2"), inherited}});
  b.c->set_static_plans({Bed::peer(2, {0})});
  b.c->sync({}, "start");
  CHECK(b.dp.take().empty());
  b.c->end_adoption();  // its session never came up: our view now rules
  auto w = b.dp.take();
  REQUIRE(w.size() == 1);
  REQUIRE(w[0].value);
  CHECK(w[0].value->slots[0].state == ML_SLOT_DOWN);
}

// Issue 12: after a netlink ENOBUFS the events are lost, so the resync must do what they would
// have done. The old resync took the new flags but renewed nothing: packets queued on a dead
// link's neighbour entry stayed there (a TCP stall of seconds), and an IPv6 next hop asked for
// before DAD waited for the kernel's retry.
TEST_CASE("controller: a resync after lost events renews what the events would have") {
  Bed b;
  b.c->set_static_plans({Bed::peer(2, {0, 1})});
  b.c->sync({}, "start");
  b.all_up();
  (void)b.dp.take();
  std::map<size_t, unsigned> all_up{{0, kUp}, {1, kUp}, {2, kUp}};
  b.c->resync(all_up, {10, 11, 12});  // the state as the events told it: nothing to do
  b.nb.log.clear();
  b.events.clear();

  // eth0 lost carrier, and the event with it.
  auto flags = all_up;
  flags[0] = IFF_UP;
  b.c->resync(flags, {10, 11, 12});
  auto w = b.dp.take();
  REQUIRE(!w.empty());
  CHECK(w.back().value->slots[0].state == ML_SLOT_DOWN);
  CHECK(b.nb.log == std::vector<std::string>{"del 10.0.0.2@10", "add 10.0.0.2@10"});
  REQUIRE(!b.events.empty());
  CHECK(b.events[0]["type"] == "device");
  CHECK(b.events[0]["link"] == "eth0");
  CHECK(b.events[0]["state"] == "down");
  // The next resync finds it as it left it: nothing renewed again.
  b.nb.log.clear();
  b.c->resync(flags, {10, 11, 12});
  CHECK(b.nb.log.empty());

  // eth1's link-local address left DAD (it went and came back; the events were lost): its
  // unresolved IPv6 next hops are renewed, the IPv4 ones are not.
  PeerPlan v6 = Bed::peer(3, {1});
  v6.links[0].nh6 = ip("fd01::3");
  b.c->set_static_plans({Bed::peer(2, {0, 1}), v6});
  b.c->sync({}, "peer");
  b.nb.table[{11, ip("fd01::3")}] = NUD_INCOMPLETE;
  b.c->resync(flags, {10, 11, 12});  // fd01::3's entry is read as it stands: unresolved
  b.nb.log.clear();
  b.c->resync(flags, {10, 12});  // the address went (tentative again) ...
  CHECK(b.nb.log.empty());
  b.c->resync(flags, {10, 11, 12});  // ... and is back past DAD
  CHECK(b.nb.log == std::vector<std::string>{"del fd01::3@11", "add fd01::3@11"});
}
