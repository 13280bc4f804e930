// ml_egress leaves alone what is not ML traffic to a peer: a non-peer destination, ARP, a
// packet too short to parse. TC_ACT_OK and no counter moves.
#include <doctest/doctest.h>

#include <vector>

#include "bpf/packets.h"

using namespace mlink::bpftest;

namespace {

constexpr uint32_t kPeerId = 3;

// A datapath with both peer addresses known, every bucket to slot 0.
struct PeeredDatapath {
  ProgHarness dp;
  PeeredDatapath() {
    ml_peer p4 = make_peer(kPeerId, AF_INET, 1);
    ml_peer p6 = make_peer(kPeerId, AF_INET6, 1);
    fill_buckets(p4, 0);
    fill_buckets(p6, 0);
    dp.put_peer(peer4(), p4);
    dp.put_peer(peer6(), p6);
  }

  uint64_t counted() const {
    uint64_t n = dp.slot_counter(kPeerId, 0).packets;
    for (uint32_t r = 0; r < ML_DROP_MAX; r++) n += dp.drop_counter(r).packets;
    return n;
  }

  void check_passes(const std::vector<uint8_t>& pkt) const {
    uint64_t before = counted();
    RunResult r = dp.egress(pkt);
    REQUIRE(r.err == 0);
    CHECK(r.retval == TC_ACT_OK);
    CHECK(r.out == pkt);
    CHECK(counted() == before);
  }
};

}  // namespace

TEST_CASE("egress: a destination that is no peer passes") {
  PeeredDatapath pd;
  for (const Fixture& fx : unicast_fixtures()) {
    CAPTURE(fx.name);
    PacketSpec spec = fx.spec;
    spec.dst = spec.dst.family == AF_INET ? stranger4() : stranger6();
    pd.check_passes(build(spec));
  }
}

TEST_CASE("egress: the peer key includes the family") {
  // An IPv6 destination whose first 4 bytes are the v4 peer's address is not that peer.
  PeeredDatapath pd;
  PacketSpec spec = tcp(AF_INET6);
  spec.dst = Ip::parse("a58:2::");  // 0a 58 00 02 = 10.88.0.2
  pd.check_passes(build(spec));
}

TEST_CASE("egress: ARP passes") {
  PeeredDatapath pd;
  pd.check_passes(build_arp());
}

// Test-run refuses (EINVAL) frames shorter than Ethernet + a whole IP header, so truncation
// below the IP header cannot be tried here; malformed headers can.
TEST_CASE("egress: a malformed IP header passes") {
  PeeredDatapath pd;
  auto v4 = build(tcp(AF_INET));
  v4[kEthLen] = 0x65;  // version 6 under EtherType IPv4
  pd.check_passes(v4);
  v4[kEthLen] = 0x44;  // ihl 4: shorter than the minimum header
  pd.check_passes(v4);
  auto v6 = build(tcp(AF_INET6));
  v6[kEthLen] = 0x40;  // version 4 under EtherType IPv6
  pd.check_passes(v6);
}
