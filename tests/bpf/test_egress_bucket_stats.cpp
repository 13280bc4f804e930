// ml_egress counts each forwarded packet in its bucket's activity counter (what the agent's
// load-aware placement reads), in the same per-peer stats value as the slot counters.
#include <doctest/doctest.h>

#include "bpf/packets.h"

using namespace mlink::bpftest;

TEST_CASE("each forwarded packet bumps exactly its own bucket's activity counter") {
  constexpr uint32_t kPeerId = 5;
  ProgHarness dp;
  ml_peer p = make_peer(kPeerId, AF_INET, 3);
  spread_buckets(p, 3);
  dp.put_peer(peer4(), p);
  for (uint16_t sport = 40000; sport < 40064; sport++) {
    PacketSpec spec = tcp(AF_INET, sport);
    unsigned bucket = l34_bucket(spec);
    auto before = dp.peer_stats(kPeerId);
    RunResult r = dp.egress(build(spec));
    REQUIRE(r.err == 0);
    REQUIRE(r.retval == TC_ACT_REDIRECT);
    auto after = dp.peer_stats(kPeerId);
    for (unsigned b = 0; b < ML_BUCKETS; b++) {
      CAPTURE(b);
      CHECK(after.bucket_packets[b] - before.bucket_packets[b] == (b == bucket ? 1u : 0u));
    }
  }
}

TEST_CASE("a dropped packet counts in no bucket") {
  constexpr uint32_t kPeerId = 6;
  ProgHarness dp;
  ml_peer p = make_peer(kPeerId, AF_INET, 1);  // every bucket ML_SLOT_NONE
  dp.put_peer(peer4(), p);
  auto before = dp.peer_stats(kPeerId);
  RunResult r = dp.egress(build(tcp(AF_INET)));
  REQUIRE(r.err == 0);
  CHECK(r.retval == TC_ACT_SHOT);
  auto after = dp.peer_stats(kPeerId);
  for (unsigned b = 0; b < ML_BUCKETS; b++)
    CHECK(after.bucket_packets[b] == before.bucket_packets[b]);
}
