// ml_egress in its production configuration, ml_l2_len = 0 (the ML device is a tun: the IP
// header is at skb->data). Test-run always parses data_in as an Ethernet frame, so these
// packets are built without one but with an IP header that also reads as an Ethernet header of
// the right EtherType (see l2less_tcp). This covers the bpf_skb_change_head placeholder that
// bpf_redirect_neigh needs on an L3 device (docs/FINDINGS.md, "bpf_redirect_neigh drops
// packets from L3 devices").
#include <doctest/doctest.h>

#include <algorithm>

#include "bpf/packets.h"

using namespace mlink::bpftest;

TEST_CASE("egress (l2_len 0): redirected with a zeroed 14-byte placeholder in front") {
  ProgHarness dp(Rodata{.l2_len = 0});
  constexpr uint32_t kPeerId = 12;
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(int(family));
    ml_peer p = make_peer(kPeerId, family, 4);
    fill_buckets(p, 2);
    dp.put_peer(family == AF_INET ? peer4() : peer6(), p);
    auto pkt = build(l2less_tcp(family));
    ml_counter before = dp.slot_counter(kPeerId, 2);
    RunResult r = dp.egress(pkt);
    REQUIRE(r.err == 0);
    CHECK(r.retval == TC_ACT_REDIRECT);
    REQUIRE(r.out.size() == pkt.size() + kEthLen);
    CHECK(std::all_of(r.out.begin(), r.out.begin() + kEthLen, [](uint8_t b) { return b == 0; }));
    CHECK(std::equal(pkt.begin(), pkt.end(), r.out.begin() + kEthLen));
    ml_counter after = dp.slot_counter(kPeerId, 2);
    CHECK(after.packets - before.packets == 1);
    CHECK(after.bytes - before.bytes == pkt.size());  // the IP length, as on the tun
  }
}

TEST_CASE("egress (l2_len 0): the slot is the l34 bucket's, as with l2_len 14") {
  ProgHarness dp(Rodata{.l2_len = 0});
  constexpr uint32_t kPeerId = 13;
  ml_peer p = make_peer(kPeerId, AF_INET, 8);
  spread_buckets(p, 8);
  dp.put_peer(peer4(), p);
  for (uint16_t sport = 1000; sport < 1032; sport++) {
    PacketSpec spec = l2less_tcp(AF_INET, sport);
    CAPTURE(sport);
    CHECK(dp.egress_slot(kPeerId, build(spec)) == static_cast<int>(l34_bucket(spec) % 8));
  }
}

TEST_CASE("egress (l2_len 0): non-peer passes unchanged") {
  ProgHarness dp(Rodata{.l2_len = 0});
  auto pkt = build(l2less_tcp(AF_INET));
  RunResult r = dp.egress(pkt);
  REQUIRE(r.err == 0);
  CHECK(r.retval == TC_ACT_OK);
  CHECK(r.out == pkt);
}
