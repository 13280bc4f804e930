// BFD echo reflection with real packets (RFC 5881 §4). This process (host Y) sits in a private
// netns with the datapath loaded and ml_ingress attached to its end of a veth; the other end
// is host X in a named netns. X sends a UDP datagram from a bound socket, TTL / hop limit 255,
// to Y's link address port 3785; ml_ingress swaps addresses and ports and sends it back out
// the veth with bpf_redirect_neigh, so X's socket receives it from Y's address, port 3785.
// No socket on Y listens on 3785: only the datapath can answer.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datapath/bpf_datapath.h"
#include "sys/netns.h"

using namespace mlink;
using namespace mlink::testing;

namespace {

constexpr uint16_t kEchoSport = 50000;

struct Reply {
  std::string from;
  uint16_t port = 0;
  int ttl = -1;  // TTL / hop limit it arrived with
  std::vector<uint8_t> bytes;
};

sockaddr_storage sockaddr_of(int family, const std::string& addr, uint16_t port) {
  sockaddr_storage ss{};
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    REQUIRE(inet_pton(AF_INET, addr.c_str(), &sin->sin_addr) == 1);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    REQUIRE(inet_pton(AF_INET6, addr.c_str(), &sin6->sin6_addr) == 1);
  }
  return ss;
}

socklen_t sockaddr_len(int family) {
  return family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

// X's echo socket: bound to its link address and kEchoSport, sending with `ttl`, reporting the
// TTL / hop limit of what it receives.
int echo_socket(int family, const std::string& local, int ttl) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  int one = 1;
  if (family == AF_INET) {
    REQUIRE(setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) == 0);
    REQUIRE(setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one)) == 0);
  } else {
    REQUIRE(setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl)) == 0);
    REQUIRE(setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof(one)) == 0);
  }
  sockaddr_storage ss = sockaddr_of(family, local, kEchoSport);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&ss), sockaddr_len(family)) == 0);
  return fd;
}

std::optional<Reply> receive(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
  std::vector<uint8_t> buf(2048);
  sockaddr_storage from{};
  alignas(cmsghdr) char ctrl[128];
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof(from);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof(ctrl);
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
  if (n < 0) return std::nullopt;
  Reply r;
  buf.resize(static_cast<size_t>(n));
  r.bytes = std::move(buf);
  char text[INET6_ADDRSTRLEN] = {};
  if (from.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&from);
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
    r.port = ntohs(sin->sin_port);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&from);
    inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
    r.port = ntohs(sin6->sin6_port);
  }
  r.from = text;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
        (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT))
      std::memcpy(&r.ttl, CMSG_DATA(c), sizeof(int));
  }
  return r;
}

// Y (this process, private netns) and X (named netns) joined by veth "et0":
// 10.78.0.{1,2}/24 and fd78::{1,2}/64, Y's datapath on Y's et0 ingress.
struct Bed {
  PrivateNetns y;
  PeerNetns x;
  std::unique_ptr<datapath::BpfDatapath> dp;

  Bed() {
    sh("ip link add et0 type veth peer name et0 netns " + x.name());
    // No DAD: a tentative address (the link-local one included) holds back ND.
    sh("sysctl -qw net.ipv6.conf.et0.accept_dad=0");
    sh("ip netns exec " + x.name() + " sysctl -qw net.ipv6.conf.et0.accept_dad=0");
    sh("ip addr add 10.78.0.1/24 dev et0");
    sh("ip addr add fd78::1/64 dev et0 nodad");
    sh("ip link set et0 up");
    x.run("addr add 10.78.0.2/24 dev et0");
    x.run("addr add fd78::2/64 dev et0 nodad");
    x.run("link set et0 up");
    auto loaded = datapath::BpfDatapath::load({});
    if (!loaded.ok())
      FAIL(loaded.error().message);  // REQUIRE_MESSAGE would call error() on success under -s
    dp = std::move(loaded).value();
    int ifindex = static_cast<int>(if_nametoindex("et0"));
    REQUIRE(ifindex > 0);
    auto st = dp->attach_ingress(ifindex);
    if (!st.ok()) FAIL(st.error().message);
    // X's .2 addresses are the BFD peers of this link (the agent writes these per session).
    for (auto [local, remote] : {std::pair{"10.78.0.1", "10.78.0.2"}, {"fd78::1", "fd78::2"}}) {
      st = dp->set_bfd_peer(
          datapath::bfd_key(ifindex, *IpAddr::parse(local), *IpAddr::parse(remote)), true);
      if (!st.ok()) FAIL(st.error().message);
    }
    // Resolve the neighbours both ways first: on a fresh veth the first solicitation is
    // sometimes lost and ND retransmits only after 1 s; the 1 s deadline below is for the
    // reflection, not for that.
    for (const char* addr : {"10.78.0.1", "fd78::1"})
      sh("ip netns exec " + x.name() + " ping -c 1 -W 5 " + addr);
    // On the link, but no BFD peer of ours; added after the pings, which must go from .2.
    x.run("addr add 10.78.0.9/24 dev et0");
    x.run("addr add fd78::9/64 dev et0 nodad");
  }
  // Detach while still in Y's netns (the ifindex is Y's).
  ~Bed() { dp.reset(); }

  ml_counter counter(unsigned which) {
    auto st = dp->ingress_stats();
    if (!st.ok()) FAIL(st.error().message);
    return (*st)[which];
  }
  ml_counter reflected() { return counter(ML_IN_ECHO_REFLECTED); }
};

struct Family {
  int af;
  std::string x_addr, y_addr;
};

const Family kFamilies[] = {{AF_INET, "10.78.0.2", "10.78.0.1"}, {AF_INET6, "fd78::2", "fd78::1"}};

// Sends one 48-byte echo from X (ttl) and returns what X's socket receives within timeout_ms.
std::optional<Reply> send_echo(Bed& bed, const Family& f, int ttl, int timeout_ms,
                               std::vector<uint8_t>& payload) {
  payload.resize(48);
  for (size_t i = 0; i < payload.size(); i++) payload[i] = static_cast<uint8_t>(i * 7 + ttl);
  return in_netns(bed.x.name(), [&] {
    int fd = echo_socket(f.af, f.x_addr, ttl);
    sockaddr_storage to = sockaddr_of(f.af, f.y_addr, ML_BFD_ECHO_PORT);
    ssize_t n = sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to),
                       sockaddr_len(f.af));
    CHECK(n == static_cast<ssize_t>(payload.size()));
    auto r = receive(fd, timeout_ms);
    ::close(fd);
    return r;
  });
}

}  // namespace

TEST_CASE("echo reflection: an echo from the link peer comes back within 1 s, IPv4 and IPv6") {
  Bed bed;
  uint64_t reflected = 0;
  for (const Family& f : kFamilies) {
    CAPTURE(f.y_addr);
    std::vector<uint8_t> payload;
    auto start = Clock::now();
    auto r = send_echo(bed, f, 255, 1000, payload);
    auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    MESSAGE(f.y_addr << ": reflection after " << took.count() << " ms");
    REQUIRE(r);
    CHECK(r->from == f.y_addr);
    CHECK(r->port == ML_BFD_ECHO_PORT);
    CHECK(r->ttl == 255);  // sent back unchanged: not forwarded, not decremented
    CHECK(r->bytes == payload);
    reflected++;
    CHECK(bed.reflected().packets == reflected);
  }
}

TEST_CASE("echo reflection: a datagram with TTL 64 is not reflected") {
  Bed bed;
  for (const Family& f : kFamilies) {
    CAPTURE(f.y_addr);
    std::vector<uint8_t> payload;
    CHECK_FALSE(send_echo(bed, f, 64, 500, payload));
  }
  CHECK(bed.reflected().packets == 0);
}

// An open reflector would send UDP wherever a neighbour asks, as fast as it asks. Only the
// link's BFD peers get echoes back.
TEST_CASE("echo reflection: an echo from an on-link address that is no BFD peer is refused") {
  Bed bed;
  const Family strangers[] = {{AF_INET, "10.78.0.9", "10.78.0.1"},
                              {AF_INET6, "fd78::9", "fd78::1"}};
  for (const Family& f : strangers) {
    CAPTURE(f.x_addr);
    std::vector<uint8_t> payload;
    CHECK_FALSE(send_echo(bed, f, 255, 500, payload));
  }
  CHECK(bed.reflected().packets == 0);
  CHECK(bed.counter(ML_IN_ECHO_REFUSED).packets == 2);
}
