// ml_egress, fragments: every fragment of a datagram (the first, which carries the ports, and
// the rest, which do not) takes the same link, or the receiver's reassembly waits on the
// slowest link and reorders. Checked on a peer whose buckets spread over 3 slots, for many
// datagrams from different sources so that several slots are in play.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "bpf/packets.h"

using namespace mlink::bpftest;

namespace {

constexpr uint32_t kPeerId = 7;
constexpr int kSlots = 3;

Ip source(uint8_t family, int k) {
  std::string n = std::to_string(k);
  return Ip::parse(family == AF_INET ? "10.88.1." + n : "fd88::1:" + n);
}

// Sends all fragments of each datagram and returns the slots the datagrams went to.
std::set<int> check_datagrams(const ProgHarness& dp, uint8_t family) {
  std::set<int> used;
  for (int k = 1; k <= 24; k++) {
    PacketSpec spec = k % 2 ? tcp(family, static_cast<uint16_t>(1000 + k)) : udp(family);
    spec.src = source(family, k);
    int want = static_cast<int>(l34_bucket(fragments(spec, 0, 2)[1]) % kSlots);
    auto frags = fragments(spec, static_cast<uint32_t>(0x1000 + k), 2 + k % 3);
    for (size_t i = 0; i < frags.size(); i++) {
      CAPTURE(k);
      CAPTURE(i);
      CHECK(dp.egress_slot(kPeerId, build(frags[i])) == want);
    }
    used.insert(want);
  }
  return used;
}

}  // namespace

TEST_CASE("egress: all fragments of an IPv4 datagram take one slot") {
  ProgHarness dp;
  ml_peer p = make_peer(kPeerId, AF_INET, kSlots);
  spread_buckets(p, kSlots);
  dp.put_peer(peer4(), p);
  CHECK(check_datagrams(dp, AF_INET).size() == kSlots);
}

TEST_CASE("egress: all fragments of an IPv6 datagram take one slot") {
  ProgHarness dp;
  ml_peer p = make_peer(kPeerId, AF_INET6, kSlots);
  spread_buckets(p, kSlots);
  dp.put_peer(peer6(), p);
  CHECK(check_datagrams(dp, AF_INET6).size() == kSlots);
}

TEST_CASE("egress: the fragment builder marks first, middle and last fragments") {
  auto f4 = fragments(udp(AF_INET), 0x4242, 3);
  auto first = build(f4[0]), middle = build(f4[1]), last = build(f4[2]);
  const size_t frag_off = kEthLen + 6;
  CHECK(first[frag_off] == 0x20);  // MF, offset 0
  CHECK(middle[frag_off] == 0x20);
  CHECK(middle[frag_off + 1] == 64 / 8);
  CHECK(last[frag_off] == 0x00);  // no MF
  CHECK(last[frag_off + 1] == 128 / 8);
  auto f6 = fragments(tcp(AF_INET6), 0x4242, 2);
  auto v6first = build(f6[0]), v6last = build(f6[1]);
  CHECK(v6first[kEthLen + 6] == IPPROTO_FRAGMENT);
  CHECK(v6first[kEthLen + 40] == IPPROTO_TCP);
  CHECK(v6first[kEthLen + 43] == 1);  // M, offset 0
  CHECK(v6last[kEthLen + 43] == 64);  // offset 64, no M
}
