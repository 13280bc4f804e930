#include <doctest/doctest.h>
#include <netinet/in.h>

#include "flow/probe_packet.h"

using namespace mlink;
using namespace mlink::flow;

namespace {
IpAddr ip(const char* s) {
  return *IpAddr::parse(s);
}
uint16_t get16(const std::vector<uint8_t>& b, size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}
}  // namespace

TEST_CASE("probe frame: Ethernet, then the flow's IPv4 header and ports where the hash reads") {
  auto b = probe_frame({ip("10.88.0.1"), ip("10.88.0.2"), IPPROTO_TCP, 40000, 5201});
  REQUIRE(b.ok());
  REQUIRE(b->size() == 14 + 20 + 20);
  CHECK(get16(*b, 12) == 0x0800);
  CHECK((*b)[14] == 0x45);
  CHECK((*b)[14 + 9] == IPPROTO_TCP);
  CHECK(std::equal(b->begin() + 26, b->begin() + 30, ip("10.88.0.1").bytes.begin()));
  CHECK(std::equal(b->begin() + 30, b->begin() + 34, ip("10.88.0.2").bytes.begin()));
  CHECK(get16(*b, 34) == 40000);
  CHECK(get16(*b, 36) == 5201);
}

TEST_CASE("probe frame: IPv6 UDP; ICMP becomes ICMPv6; mixed families are refused") {
  auto b = probe_frame({ip("fd88::1"), ip("fd88::2"), IPPROTO_UDP, 1, 2});
  REQUIRE(b.ok());
  REQUIRE(b->size() == 14 + 40 + 20);
  CHECK(get16(*b, 12) == 0x86dd);
  CHECK((*b)[14 + 6] == IPPROTO_UDP);
  CHECK(get16(*b, 54) == 1);
  CHECK(get16(*b, 56) == 2);
  auto i = probe_frame({ip("fd88::1"), ip("fd88::2"), IPPROTO_ICMP, 0, 0});
  REQUIRE(i.ok());
  CHECK((*i)[14 + 6] == IPPROTO_ICMPV6);
  CHECK_FALSE(probe_frame({ip("10.88.0.1"), ip("fd88::2"), IPPROTO_TCP, 0, 0}).ok());
  CHECK_FALSE(probe_frame({IpAddr{}, ip("fd88::2"), IPPROTO_TCP, 0, 0}).ok());
}

TEST_CASE("protocol names and numbers") {
  CHECK(parse_proto("tcp").value() == IPPROTO_TCP);
  CHECK(parse_proto("udp").value() == IPPROTO_UDP);
  CHECK(parse_proto("icmp").value() == IPPROTO_ICMP);
  CHECK(parse_proto("132").value() == 132);
  CHECK_FALSE(parse_proto("256").ok());
  CHECK_FALSE(parse_proto("tcpx").ok());
  CHECK_FALSE(parse_proto("").ok());
}
