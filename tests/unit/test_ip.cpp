#include <doctest/doctest.h>
#include <sys/socket.h>

#include "common/ip.h"

using mlink::IpAddr;
using mlink::Prefix;

TEST_CASE("IpAddr parses both families and rejects junk") {
  auto v4 = IpAddr::parse("10.88.0.2");
  REQUIRE(v4);
  CHECK(v4->family == AF_INET);
  CHECK(v4->str() == "10.88.0.2");
  auto v6 = IpAddr::parse("fd00:0:0:1::2");
  REQUIRE(v6);
  CHECK(v6->family == AF_INET6);
  CHECK(v6->str() == "fd00:0:0:1::2");
  CHECK_FALSE(IpAddr::parse("10.88.0.256"));
  CHECK_FALSE(IpAddr::parse("10.88.0.1/16"));
  CHECK_FALSE(IpAddr::parse(""));
}

TEST_CASE("Prefix parses, masks and contains") {
  auto p = Prefix::parse("10.88.3.1/16");
  REQUIRE(p);
  CHECK(p->len == 16);
  CHECK(p->network().str() == "10.88.0.0/16");
  CHECK(p->contains(*IpAddr::parse("10.88.200.7")));
  CHECK_FALSE(p->contains(*IpAddr::parse("10.89.0.1")));
  CHECK_FALSE(p->contains(*IpAddr::parse("fd88::1")));
  CHECK(Prefix::parse("fd88::1/64")->network().str() == "fd88::/64");
  CHECK(Prefix::parse("10.0.0.1")->len == 32);
  CHECK_FALSE(Prefix::parse("10.0.0.1/33"));
  CHECK_FALSE(Prefix::parse("10.0.0.1/"));
  CHECK_FALSE(Prefix::parse("10.0.0.1/1x"));
}
