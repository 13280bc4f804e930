// ml_egress, IPv4 and IPv6 x TCP/UDP/ICMP to a peer: redirected, and counted once (packets and
// bytes) on exactly the slot the bucket table names.
#include <doctest/doctest.h>

#include <set>

#include "bpf/packets.h"

using namespace mlink::bpftest;

namespace {

constexpr uint32_t kPeer4Id = 1;
constexpr uint32_t kPeer6Id = 2;

// A peer per family, v4 with IPv4 next hops and v6 with IPv6 ones.
void put_peers(ProgHarness& dp, ml_peer p4, ml_peer p6) {
  dp.put_peer(peer4(), p4);
  dp.put_peer(peer6(), p6);
}

uint32_t peer_id_for(const PacketSpec& s) {
  return s.dst.family == AF_INET ? kPeer4Id : kPeer6Id;
}

// Runs pkt, checks it was redirected unchanged and counted on `slot` only; nothing dropped.
void check_counted_on(const ProgHarness& dp, const PacketSpec& spec, int slot) {
  auto pkt = build(spec);
  uint32_t id = peer_id_for(spec);
  auto before = dp.slot_counters(id);
  ml_counter drops_before = dp.drop_counter(ML_DROP_NO_LINK);
  RunResult r = dp.egress(pkt);
  REQUIRE(r.err == 0);
  CHECK(r.retval == TC_ACT_REDIRECT);
  CHECK(r.out == pkt);  // ml_l2_len = 14: no placeholder pushed
  auto after = dp.slot_counters(id);
  for (int s = 0; s < ML_MAX_SLOTS; s++) {
    CAPTURE(s);
    CHECK(after[s].packets - before[s].packets == (s == slot ? 1u : 0u));
    CHECK(after[s].bytes - before[s].bytes == (s == slot ? pkt.size() : 0u));
  }
  CHECK(dp.drop_counter(ML_DROP_NO_LINK).packets == drops_before.packets);
}

}  // namespace

TEST_CASE("egress: each protocol to a peer goes to the one slot all buckets name") {
  ProgHarness dp;
  for (uint8_t slot : {0, 3, 7}) {
    ml_peer p4 = make_peer(kPeer4Id, AF_INET, 8);
    ml_peer p6 = make_peer(kPeer6Id, AF_INET6, 8);
    fill_buckets(p4, slot);
    fill_buckets(p6, slot);
    put_peers(dp, p4, p6);
    for (const Fixture& fx : unicast_fixtures()) {
      CAPTURE(fx.name);
      CAPTURE(int(slot));
      check_counted_on(dp, fx.spec, slot);
    }
  }
}

TEST_CASE("egress: with a spread table the slot is the one of the flow's l34 bucket") {
  ProgHarness dp;
  ml_peer p4 = make_peer(kPeer4Id, AF_INET, 8);
  ml_peer p6 = make_peer(kPeer6Id, AF_INET6, 8);
  spread_buckets(p4, 8);  // bucket b -> slot b % 8
  spread_buckets(p6, 8);
  put_peers(dp, p4, p6);
  for (const Fixture& fx : unicast_fixtures()) {
    CAPTURE(fx.name);
    check_counted_on(dp, fx.spec, static_cast<int>(l34_bucket(fx.spec) % 8));
  }
  // Many flows, so the spread (and the oracle) is exercised on more than a couple of slots.
  std::set<int> used;
  for (uint16_t sport = 30000; sport < 30064; sport++) {
    for (PacketSpec spec : {tcp(AF_INET, sport), udp(AF_INET6, sport)}) {
      CAPTURE(sport);
      int want = static_cast<int>(l34_bucket(spec) % 8);
      check_counted_on(dp, spec, want);
      used.insert(want);
    }
  }
  CHECK(used.size() >= 6);
}

TEST_CASE("egress: counters accumulate per (peer, slot)") {
  ProgHarness dp;
  ml_peer p4 = make_peer(kPeer4Id, AF_INET, 2);
  fill_buckets(p4, 1);
  dp.put_peer(peer4(), p4);
  auto pkt = build(tcp(AF_INET));
  for (int i = 0; i < 5; i++) REQUIRE(dp.egress(pkt).retval == TC_ACT_REDIRECT);
  CHECK(dp.slot_counter(kPeer4Id, 1).packets == 5);
  CHECK(dp.slot_counter(kPeer4Id, 1).bytes == 5 * pkt.size());
  CHECK(dp.slot_counter(kPeer4Id, 0).packets == 0);
  CHECK(dp.slot_counter(kPeer6Id, 1).packets == 0);  // another peer's row stays untouched
}

TEST_CASE("egress: a packet cut before its ports hashes with ports 0") {
  // The ports are read only if they are inside the packet; otherwise the flow hashes as if
  // portless rather than reading past the end.
  ProgHarness dp;
  ml_peer p4 = make_peer(kPeer4Id, AF_INET, 8);
  spread_buckets(p4, 8);
  dp.put_peer(peer4(), p4);
  for (uint16_t sport = 100; sport < 116; sport++) {
    PacketSpec spec = tcp(AF_INET, sport);
    auto pkt = build(spec);
    pkt.resize(kEthLen + 20 + 2);  // IP header and half of the ports
    spec.sport = spec.dport = 0;
    CAPTURE(sport);
    CHECK(dp.egress_slot(kPeer4Id, pkt) == static_cast<int>(l34_bucket(spec) % 8));
  }
}
