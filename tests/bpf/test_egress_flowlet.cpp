// ml_egress in flowlet mode (enum ml_spread): a flow keeps its bucket while its packets come
// closer together than the peer's flowlet_gap_us; after a longer pause it draws a random
// bucket. The bucket's slot still decides the link, so a rewritten bucket moves the flowlet
// with it (failover, drain). Flow mode never touches ml_flowlets.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <doctest/doctest.h>

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

// The flow's ml_flowlets entry, if any.
std::optional<ml_flowlet> flowlet_of(const ProgHarness& dp, uint32_t hash) {
  ml_flowlet_key k{kPeerId, hash};
  ml_flowlet v{};
  if (bpf_map_lookup_elem(bpf_map__fd(dp.skel()->maps.ml_flowlets), &k, &v) != 0)
    return std::nullopt;
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
  auto fl = flowlet_of(dp, first.decision.hash);
  REQUIRE(fl);
  CHECK(fl->flowlets == 1);
  CHECK(fl->bucket == first.decision.bucket);
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
  auto fl = flowlet_of(dp, hash);
  REQUIRE(fl);
  CHECK(fl->flowlets == 64);
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
  CHECK_FALSE(flowlet_of(dp, r.decision.hash));
}
