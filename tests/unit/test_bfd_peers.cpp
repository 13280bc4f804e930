// BfdPeerFilter keeps ml_bfd_peers equal to the sessions that run: an entry per (link, local,
// remote) while a session uses it, gone when the last one ends; an adopted map's leftovers
// are pruned and the live ones kept.
#include <doctest/doctest.h>

#include "agent/bfd_peers.h"
#include "fakes.h"

using namespace mlink;
using namespace mlink::testing;

namespace {

agent::SessionTarget target(const char* dev, const char* local, const char* remote) {
  return {dev, *IpAddr::parse(local), *IpAddr::parse(remote), std::string(remote) + " via " + dev};
}

int ifindex_of(const std::string& dev) {
  return dev == "eth0" ? 10 : dev == "eth1" ? 11 : 0;
}

}  // namespace

TEST_CASE("bfd peers: written with the session, removed after it, per (link, local, remote)") {
  FakeSessions sessions;
  FakeDatapath dp;
  agent::BfdPeerFilter f(sessions, dp, ifindex_of);
  auto a = f.add(target("eth0", "10.0.0.1", "10.0.0.2"));
  auto b = f.add(target("eth1", "10.1.0.1", "10.1.0.2"));
  REQUIRE(a);
  REQUIRE(b);
  CHECK(dp.bfd_peers.size() == 2);
  CHECK(dp.bfd_peers.count(
            datapath::bfd_key(10, *IpAddr::parse("10.0.0.1"), *IpAddr::parse("10.0.0.2"))) == 1);
  // The same triple twice (two plans over one next hop): one entry, kept until both end.
  auto c = f.add(target("eth0", "10.0.0.1", "10.0.0.2"));
  REQUIRE(c);
  CHECK(dp.bfd_peers.size() == 2);
  f.remove(*a);
  CHECK(dp.bfd_peers.size() == 2);
  f.remove(*c);
  CHECK(dp.bfd_peers.size() == 1);
  CHECK(sessions.live.size() == 1);
  // No such device: refused, nothing written.
  CHECK_FALSE(f.add(target("eth9", "10.9.0.1", "10.9.0.2")));
  CHECK(dp.bfd_peers.size() == 1);
}

TEST_CASE("bfd peers: an adopted map keeps what still runs and loses the rest") {
  FakeSessions sessions;
  FakeDatapath dp;
  agent::BfdPeerFilter f(sessions, dp, ifindex_of);
  auto old1 = datapath::bfd_key(10, *IpAddr::parse("10.0.0.1"), *IpAddr::parse("10.0.0.7"));
  auto old2 = datapath::bfd_key(11, *IpAddr::parse("fd01::1"), *IpAddr::parse("fd01::7"));
  dp.bfd_peers = {old1, old2};                             // left by the agent that died
  REQUIRE(f.add(target("eth0", "10.0.0.1", "10.0.0.7")));  // relearned
  std::vector<ml_bfd_key> present(dp.bfd_peers.begin(), dp.bfd_peers.end());
  CHECK(f.prune(present) == 1);
  CHECK(dp.bfd_peers.size() == 1);
  CHECK(dp.bfd_peers.count(old1) == 1);
}
