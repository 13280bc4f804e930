// ml_egress drops, and counts by reason, what goes to a peer but has no usable link: a bucket
// owned by no slot (ML_DROP_NO_LINK) and a bucket naming a slot that is not up
// (ML_DROP_SLOT_DOWN).
#include <doctest/doctest.h>

#include "bpf/packets.h"

using namespace mlink::bpftest;

namespace {

constexpr uint32_t kPeerId = 4;

// Sends every fixture and checks each is dropped, counted once under `reason` with its length,
// and under no other reason and no slot.
void check_dropped(const ProgHarness& dp, uint32_t reason) {
  for (const Fixture& fx : unicast_fixtures()) {
    CAPTURE(fx.name);
    auto pkt = build(fx.spec);
    ml_counter before[ML_DROP_MAX];
    for (uint32_t r = 0; r < ML_DROP_MAX; r++) before[r] = dp.drop_counter(r);
    auto slots_before = dp.slot_counters(kPeerId);
    RunResult res = dp.egress(pkt);
    REQUIRE(res.err == 0);
    CHECK(res.retval == TC_ACT_SHOT);
    for (uint32_t r = 0; r < ML_DROP_MAX; r++) {
      CAPTURE(r);
      ml_counter now = dp.drop_counter(r);
      CHECK(now.packets - before[r].packets == (r == reason ? 1u : 0u));
      CHECK(now.bytes - before[r].bytes == (r == reason ? pkt.size() : 0u));
    }
    auto slots_after = dp.slot_counters(kPeerId);
    for (int s = 0; s < ML_MAX_SLOTS; s++) CHECK(slots_after[s].packets == slots_before[s].packets);
  }
}

void put_both(ProgHarness& dp, ml_peer p4, ml_peer p6) {
  dp.put_peer(peer4(), p4);
  dp.put_peer(peer6(), p6);
}

}  // namespace

TEST_CASE("egress: a peer whose buckets name no slot drops with no_link") {
  ProgHarness dp;
  // make_peer leaves every bucket ML_SLOT_NONE.
  put_both(dp, make_peer(kPeerId, AF_INET, 3), make_peer(kPeerId, AF_INET6, 3));
  check_dropped(dp, ML_DROP_NO_LINK);
}

TEST_CASE("egress: a bucket value past the last slot drops with no_link") {
  ProgHarness dp;
  ml_peer p4 = make_peer(kPeerId, AF_INET, 8), p6 = make_peer(kPeerId, AF_INET6, 8);
  fill_buckets(p4, ML_MAX_SLOTS);  // 16: out of range but not ML_SLOT_NONE
  fill_buckets(p6, 0x80);
  put_both(dp, p4, p6);
  check_dropped(dp, ML_DROP_NO_LINK);
}

TEST_CASE("egress: a bucket naming a DOWN slot drops with slot_down") {
  ProgHarness dp;
  ml_peer p4 = make_peer(kPeerId, AF_INET, 3), p6 = make_peer(kPeerId, AF_INET6, 3);
  fill_buckets(p4, 2);
  fill_buckets(p6, 2);
  p4.slots[2].state = ML_SLOT_DOWN;
  p6.slots[2].state = ML_SLOT_DOWN;
  put_both(dp, p4, p6);
  check_dropped(dp, ML_DROP_SLOT_DOWN);
}

TEST_CASE("egress: a bucket naming an unused slot drops with slot_down") {
  ProgHarness dp;
  ml_peer p4 = make_peer(kPeerId, AF_INET, 3), p6 = make_peer(kPeerId, AF_INET6, 3);
  fill_buckets(p4, 5);  // slots 3..7 are ML_SLOT_UNUSED
  fill_buckets(p6, 5);
  put_both(dp, p4, p6);
  check_dropped(dp, ML_DROP_SLOT_DOWN);
}
