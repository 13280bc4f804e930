// ml_ingress on a link: traffic to a local ML address is redirected into the ML device
// (rodata ml_ifindex) and counted; everything else passes untouched.
#include <doctest/doctest.h>

#include "bpf/packets.h"

using namespace mlink::bpftest;

namespace {

ProgHarness& with_locals(ProgHarness& dp) {
  dp.put_local(local4());
  dp.put_local(local6());
  return dp;
}

}  // namespace

TEST_CASE("ingress: traffic to a local ML address is delivered and counted") {
  ProgHarness dp(Rodata{.ifindex = 1});
  with_locals(dp);
  uint64_t packets = 0, bytes = 0;
  for (const Fixture& fx : unicast_fixtures()) {
    CAPTURE(fx.name);
    auto pkt = build(fx.spec.reply());  // peer -> local
    RunResult r = dp.ingress(pkt);
    REQUIRE(r.err == 0);
    CHECK(r.retval == TC_ACT_REDIRECT);
    packets += 1;
    bytes += pkt.size();
    ml_counter c = dp.ingress_counter(ML_IN_DELIVERED);
    CHECK(c.packets == packets);
    CHECK(c.bytes == bytes);
  }
}

TEST_CASE("ingress: fragments to a local address are delivered too") {
  ProgHarness dp;
  with_locals(dp);
  for (uint8_t family : {AF_INET, AF_INET6}) {
    for (const PacketSpec& f : fragments(udp(family).reply(), 77, 3))
      CHECK(dp.ingress(build(f)).retval == TC_ACT_REDIRECT);
  }
  CHECK(dp.ingress_counter(ML_IN_DELIVERED).packets == 6);
}

TEST_CASE("ingress: other destinations and non-IP pass") {
  ProgHarness dp;
  with_locals(dp);
  for (const Fixture& fx : unicast_fixtures()) {
    CAPTURE(fx.name);
    PacketSpec spec = fx.spec.reply();
    spec.dst = spec.dst.family == AF_INET ? stranger4() : stranger6();
    auto pkt = build(spec);
    RunResult r = dp.ingress(pkt);
    REQUIRE(r.err == 0);
    CHECK(r.retval == TC_ACT_OK);
    CHECK(r.out == pkt);
    // The peer's address is not local either (it is a peer, not us).
    CHECK(dp.ingress(build(fx.spec)).retval == TC_ACT_OK);
  }
  CHECK(dp.ingress(build_arp()).retval == TC_ACT_OK);
  CHECK(dp.ingress_counter(ML_IN_DELIVERED).packets == 0);
}
