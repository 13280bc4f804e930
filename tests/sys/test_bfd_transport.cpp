// BFD's link sockets across a real veth between two namespaces: datagrams
// cross the link both ways in IPv4 and IPv6 from a source port in
// 49152..65535, and anything that did not arrive with TTL/hop limit 255 is
// dropped and counted (RFC 5881 §5).
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>

#include "bfd/transport.h"
#include "sys/netns.h"

using namespace mlink;
using namespace mlink::testing;

namespace {

// Up to 5 s: on a veth that has just come up the first neighbour solicitation
// is often lost, and the first IPv6 datagram waits for ND's 1 s retransmit.
std::optional<bfd::Datagram> wait_datagram(bfd::LinkSocket& s) {
  pollfd p{s.fd(), POLLIN, 0};
  for (int i = 0; i < 100; i++) {
    if (auto d = s.receive()) return d;
    ::poll(&p, 1, 50);
  }
  return std::nullopt;
}

// Two namespaces joined by veth "bt0", 10.77.0.{1,2}/24 and fd77::{1,2}/64.
struct Pair {
  PeerNetns a, b;
  Pair() {
    sh("ip link add bt0 netns " + a.name() + " type veth peer name bt0 netns " + b.name());
    int i = 1;
    for (auto* ns : {&a, &b}) {
      std::string n = std::to_string(i++);
      ns->run("addr add 10.77.0." + n + "/24 dev bt0");
      ns->run("addr add fd77::" + n + "/64 dev bt0 nodad");
      // A tentative link-local address holds back neighbour solicitations.
      sh("ip netns exec " + ns->name() + " sysctl -qw net.ipv6.conf.bt0.accept_dad=0");
      ns->run("link set bt0 up");
    }
  }
};

void exchange(Pair& p, const char* addr_a, const char* addr_b) {
  INFO("from " << std::string(addr_a));
  auto a_addr = *IpAddr::parse(addr_a), b_addr = *IpAddr::parse(addr_b);
  auto sa = in_netns(p.a.name(), [&] { return bfd::LinkSocket::open("bt0", a_addr); });
  auto sb = in_netns(p.b.name(), [&] { return bfd::LinkSocket::open("bt0", b_addr); });
  REQUIRE_MESSAGE(sa.ok(), sa.error().message);
  REQUIRE_MESSAGE(sb.ok(), sb.error().message);
  CHECK(sa->source_port() >= 49152);
  const uint8_t hello[] = {0x20, 0x40, 3, 24};
  REQUIRE(sa->send(b_addr, hello).ok());
  auto d = wait_datagram(*sb);
  REQUIRE(d);
  CHECK(d->src == a_addr);
  CHECK(d->sport == sa->source_port());
  CHECK(d->bytes == std::vector<uint8_t>(std::begin(hello), std::end(hello)));
  REQUIRE(sb->send(a_addr, hello).ok());
  CHECK(wait_datagram(*sa));
}

}  // namespace

TEST_CASE("BFD link sockets exchange datagrams over the link, IPv4 and IPv6") {
  Pair p;
  exchange(p, "10.77.0.1", "10.77.0.2");
  exchange(p, "fd77::1", "fd77::2");
}

TEST_CASE("RFC 5881 5: a datagram that arrives with TTL below 255 is dropped and counted") {
  Pair p;
  auto b_addr = *IpAddr::parse("10.77.0.2");
  auto sb = in_netns(p.b.name(), [&] { return bfd::LinkSocket::open("bt0", b_addr); });
  REQUIRE(sb.ok());
  in_netns(p.a.name(), [&] {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int ttl = 254;
    setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(bfd::kControlPort);
    std::memcpy(&to.sin_addr, b_addr.bytes.data(), 4);
    const char x[4] = {};
    sendto(fd, x, sizeof(x), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    ::close(fd);
    return 0;
  });
  CHECK_FALSE(wait_datagram(*sb));
  CHECK(sb->dropped_hop_limit() == 1);
}
