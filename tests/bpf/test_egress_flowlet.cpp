// ml_egress in flowlet mode (enum ml_spread): a flow keeps its bucket while its packets come
// closer together than the peer's flowlet_gap_us; after a longer pause it draws a random
// bucket. The bucket's slot still decides the link, so a rewritten bucket moves the flowlet
// with it (failover, drain). Flow mode never touches ml_flowlets.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <doctest/doctest.h>
#include <time.h>

#include <set>

#include "bpf/packets.h"
#include "mlink.skel.h"

using namespace mlink::bpftest;

namespace {

constexpr uint32_t kPeerId = 7;

ml_peer flowlet_peer(uint32_t gap_us, int nslots = 3) {
  ml_peer p = make_peer(kPeerId, AF_INET, nslots);
  spread_buckets(p, nslots);
  p.spread = ML_SPREAD_FLOWLET;
  p.flowlet_gap_us = gap_us;
  return p;
}

// The flow's ml_flowlets entry (an array: every index has one; a flow's is zero until used).
ml_flowlet flowlet_of(const ProgHarness& dp, uint32_t hash) {
  uint32_t idx = ml_flowlet_index(kPeerId, hash);
  ml_flowlet v{};
  int err = bpf_map_lookup_elem(bpf_map__fd(dp.skel()->maps.ml_flowlets), &idx, &v);
  REQUIRE(err == 0);
  return v;
}

}  // namespace

TEST_CASE("flowlet: packets closer than the gap stay on the flowlet's bucket and link") {
  ProgHarness dp;
  dp.put_peer(peer4(), flowlet_peer(1000000));  // 1 s: every packet below is one flowlet
  auto pkt = build(tcp(AF_INET));
  RunResult first = dp.egress(pkt);
  REQUIRE(first.err == 0);
  REQUIRE(first.retval == TC_ACT_REDIRECT);
  for (int i = 0; i < 50; i++) {
    RunResult r = dp.egress(pkt);
    REQUIRE(r.err == 0);
    CHECK(r.decision.bucket == first.decision.bucket);
    CHECK(r.decision.slot == first.decision.slot);
  }
  ml_flowlet fl = flowlet_of(dp, first.decision.hash);
  CHECK(fl.flowlets == 1);
  CHECK(fl.bucket == first.decision.bucket);
  CHECK(fl.peer_id == kPeerId);
  CHECK(fl.hash == first.decision.hash);
  CHECK(dp.slot_counter(kPeerId, first.decision.slot).packets == 51);
}

TEST_CASE("flowlet: after a pause a flow draws a new bucket, so one flow uses every link") {
  ProgHarness dp;
  dp.put_peer(peer4(), flowlet_peer(0));  // no gap: every packet starts a flowlet
  auto pkt = build(tcp(AF_INET));
  std::set<uint32_t> slots, buckets;
  uint32_t hash = 0;
  for (int i = 0; i < 64; i++) {
    RunResult r = dp.egress(pkt);
    REQUIRE(r.err == 0);
    REQUIRE(r.retval == TC_ACT_REDIRECT);
    CHECK(r.decision.slot == r.decision.bucket % 3);  // the bucket table still decides
    slots.insert(r.decision.slot);
    buckets.insert(r.decision.bucket);
    hash = r.decision.hash;
  }
  // 64 random draws over 256 buckets: all three links (P(miss one) ~ 3 (2/3)^64 < 1e-10).
  CHECK(slots.size() == 3);
  CHECK(buckets.size() > 20);
  CHECK(flowlet_of(dp, hash).flowlets == 64);
}

TEST_CASE("flowlet: a new flowlet avoids the old one's link") {
  ProgHarness dp;
  dp.put_peer(peer4(), flowlet_peer(0));  // every packet a new flowlet
  auto pkt = build(tcp(AF_INET));
  int same = 0, last = -1;
  constexpr int kDraws = 200;
  for (int i = 0; i < kDraws; i++) {
    RunResult r = dp.egress(pkt);
    REQUIRE(r.err == 0);
    if (static_cast<int>(r.decision.slot) == last) same++;
    last = r.decision.slot;
  }
  // Two draws: the same link again with p = 1/9 (mean 22 of 199); one draw would be p = 1/3
  // (mean 66, sd 6.7). 45 is 5 sd from the first and 3 sd from the second.
  CHECK(same < 45);
}

TEST_CASE("flowlet: a rewritten bucket moves the flowlet with it (failover, drain)") {
  ProgHarness dp;
  ml_peer p = flowlet_peer(1000000);
  dp.put_peer(peer4(), p);
  auto pkt = build(tcp(AF_INET));
  RunResult r = dp.egress(pkt);
  REQUIRE(r.err == 0);
  uint8_t moved_to = static_cast<uint8_t>((r.decision.slot + 1) % 3);
  p.buckets[r.decision.bucket] = moved_to;
  dp.put_peer(peer4(), p);
  RunResult after = dp.egress(pkt);
  REQUIRE(after.err == 0);
  CHECK(after.retval == TC_ACT_REDIRECT);
  CHECK(after.decision.bucket == r.decision.bucket);
  CHECK(after.decision.slot == moved_to);
  // A slot taken down drops as in flow mode until the agent rewrites its buckets.
  p.slots[moved_to].state = ML_SLOT_DOWN;
  dp.put_peer(peer4(), p);
  CHECK(dp.egress(pkt).retval == TC_ACT_SHOT);
}

TEST_CASE("flowlet: flow mode leaves ml_flowlets alone and hashes as before") {
  ProgHarness dp;
  ml_peer p = make_peer(kPeerId, AF_INET, 3);
  spread_buckets(p, 3);
  dp.put_peer(peer4(), p);
  PacketSpec spec = tcp(AF_INET);
  RunResult r = dp.egress(build(spec));
  REQUIRE(r.err == 0);
  CHECK(r.decision.bucket == l34_bucket(spec));
  CHECK(flowlet_of(dp, r.decision.hash).flowlets == 0);
}

// The flowlet clock is the departure time TCP writes in every segment (EDT), so these cases
// choose the time; a packet without one is timed by the clock at egress.
TEST_CASE("flowlet: the departure time decides the pause") {
  ProgHarness dp;
  dp.put_peer(peer4(), flowlet_peer(500));  // 500 us
  auto pkt = build(tcp(AF_INET));
  constexpr uint64_t t0 = 5'000'000'000;
  DepartureRun tcp_egress(dp.egress_fd());
  RunResult first = tcp_egress.run(pkt, t0);
  REQUIRE(first.err == 0);
  REQUIRE(first.retval == TC_ACT_REDIRECT);
  uint32_t hash = first.decision.hash;
  CHECK(flowlet_of(dp, hash).last_ns == t0);
  // 400 us later: one flowlet.
  RunResult near = tcp_egress.run(pkt, t0 + 400'000);
  CHECK(near.decision.bucket == first.decision.bucket);
  CHECK(flowlet_of(dp, hash).flowlets == 1);
  // A departure before the last one (pacing, or another flow on the entry) is no pause.
  CHECK(tcp_egress.run(pkt, t0).err == 0);
  CHECK(flowlet_of(dp, hash).flowlets == 1);
  CHECK(flowlet_of(dp, hash).last_ns == t0);
  // 600 us after the last: a new flowlet (a new draw; it may draw the same bucket).
  CHECK(tcp_egress.run(pkt, t0 + 600'000).err == 0);
  CHECK(flowlet_of(dp, hash).flowlets == 2);
  CHECK(flowlet_of(dp, hash).last_ns == t0 + 600'000);
}

TEST_CASE("flowlet: a packet with no departure time is timed by the clock") {
  ProgHarness dp;
  dp.put_peer(peer4(), flowlet_peer(500));
  auto pkt = build(tcp(AF_INET));
  timespec before{}, after{};
  clock_gettime(CLOCK_MONOTONIC, &before);
  RunResult r = dp.egress(pkt);
  clock_gettime(CLOCK_MONOTONIC, &after);
  REQUIRE(r.err == 0);
  auto ns = [](const timespec& t) { return uint64_t(t.tv_sec) * 1'000'000'000 + t.tv_nsec; };
  uint64_t last = flowlet_of(dp, r.decision.hash).last_ns;
  CHECK(last >= ns(before));
  CHECK(last <= ns(after));
}
