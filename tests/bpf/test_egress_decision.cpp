// ml_egress reports its decision in __sk_buff->cb (struct ml_decision) for `mlinkctl flow
// get`: for a packet to a peer, the peer, the flow hash, the bucket and the bucket's slot,
// exactly those the packet was sent by; for any other packet, nothing.
#include <doctest/doctest.h>

#include "bpf/packets.h"

using namespace mlink::bpftest;

namespace {

constexpr uint32_t kPeerId = 21;

}  // namespace

TEST_CASE("egress decision: the bucket and slot each flow was sent by") {
  for (uint32_t l2 : {14u, 0u}) {
    CAPTURE(l2);
    ProgHarness dp(Rodata{.l2_len = l2});
    for (uint8_t family : {AF_INET, AF_INET6}) {
      CAPTURE(int(family));
      ml_peer p = make_peer(kPeerId, family, 8);
      spread_buckets(p, 8);  // bucket b -> slot b % 8
      dp.put_peer(family == AF_INET ? peer4() : peer6(), p);
      for (uint16_t sport = 30000; sport < 30032; sport++) {
        PacketSpec spec = l2 ? tcp(family, sport) : l2less_tcp(family, sport);
        auto before = dp.slot_counters(kPeerId);
        RunResult r = dp.egress(build(spec));
        REQUIRE(r.err == 0);
        REQUIRE(r.retval == TC_ACT_REDIRECT);
        CHECK(r.decision.magic == ML_DECISION_MAGIC);
        CHECK(r.decision.peer_id == kPeerId);
        CHECK(r.decision.hash == l34_hash(spec));
        CHECK(r.decision.bucket == l34_bucket(spec));
        CHECK(r.decision.slot == l34_bucket(spec) % 8);
        // ... and it is the slot the packet was counted on.
        auto after = dp.slot_counters(kPeerId);
        CHECK(after[r.decision.slot].packets - before[r.decision.slot].packets == 1);
      }
    }
  }
}

TEST_CASE("egress decision: reported for a dropped packet too; nothing for a non-peer") {
  ProgHarness dp;
  ml_peer p = make_peer(kPeerId, AF_INET, 2);  // every bucket ML_SLOT_NONE
  dp.put_peer(peer4(), p);
  RunResult r = dp.egress(build(tcp(AF_INET)));
  REQUIRE(r.err == 0);
  CHECK(r.retval == TC_ACT_SHOT);
  CHECK(r.decision.magic == ML_DECISION_MAGIC);
  CHECK(r.decision.slot == ML_SLOT_NONE);

  PacketSpec other = tcp(AF_INET);
  other.dst = stranger4();
  r = dp.egress(build(other));
  REQUIRE(r.err == 0);
  CHECK(r.retval == TC_ACT_OK);
  CHECK(r.decision.magic == 0);
}
