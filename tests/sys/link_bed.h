// link_bed.h - one veth link between this process's private netns (host A, the agent side)
// and a named netns (host B, the peer), both ends addressed and resolved, with a plain UDP
// socket type for B's crafted packets. Shared by the sys tests of the agent's protocols.
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sys/netns.h"

namespace mlink::testing {

using Bytes = std::vector<uint8_t>;

inline const char* const kLocal4 = "10.79.0.1";
inline const char* const kPeer4 = "10.79.0.2";
inline const char* const kLocal6 = "fd79::1";
inline const char* const kPeer6 = "fd79::2";

inline sockaddr_storage sockaddr_of(const std::string& addr, uint16_t port, socklen_t& len) {
  sockaddr_storage ss{};
  if (addr.find(':') == std::string::npos) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    REQUIRE(inet_pton(AF_INET, addr.c_str(), &sin->sin_addr) == 1);
    len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    REQUIRE(inet_pton(AF_INET6, addr.c_str(), &sin6->sin6_addr) == 1);
    len = sizeof(sockaddr_in6);
  }
  return ss;
}

// A UDP socket bound to addr:port (port 0: any), in the namespace it is created in.
class Udp {
 public:
  Udp(const std::string& addr, uint16_t port) {
    family_ = addr.find(':') == std::string::npos ? AF_INET : AF_INET6;
    fd_ = socket(family_, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    socklen_t len = 0;
    sockaddr_storage at = sockaddr_of(addr, port, len);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&at), len) == 0);
  }
  ~Udp() { ::close(fd_); }
  Udp(const Udp&) = delete;
  Udp& operator=(const Udp&) = delete;

  void send(const std::string& dst, uint16_t port, const Bytes& b, int ttl = 255) {
    if (family_ == AF_INET)
      REQUIRE(setsockopt(fd_, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) == 0);
    else
      REQUIRE(setsockopt(fd_, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl)) == 0);
    socklen_t len = 0;
    sockaddr_storage to = sockaddr_of(dst, port, len);
    REQUIRE(sendto(fd_, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&to), len) ==
            static_cast<ssize_t>(b.size()));
  }
  // Everything queued now, with the port each came from.
  std::vector<std::pair<Bytes, uint16_t>> receive_all_from() {
    std::vector<std::pair<Bytes, uint16_t>> out;
    for (;;) {
      Bytes b(2048);
      sockaddr_storage from{};
      socklen_t len = sizeof(from);
      ssize_t n =
          recvfrom(fd_, b.data(), b.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0) return out;
      b.resize(static_cast<size_t>(n));
      uint16_t port = from.ss_family == AF_INET
                          ? ntohs(reinterpret_cast<sockaddr_in*>(&from)->sin_port)
                          : ntohs(reinterpret_cast<sockaddr_in6*>(&from)->sin6_port);
      out.emplace_back(std::move(b), port);
    }
  }
  // Everything queued now.
  std::vector<Bytes> receive_all() {
    std::vector<Bytes> out;
    for (;;) {
      Bytes b(2048);
      ssize_t n = recv(fd_, b.data(), b.size(), MSG_DONTWAIT);
      if (n < 0) return out;
      b.resize(static_cast<size_t>(n));
      out.push_back(std::move(b));
    }
  }

 private:
  int fd_ = -1;
  int family_ = 0;
};

// A (this process, private netns) and B (named netns) joined by veth "rj0", with the
// neighbours resolved both ways, so that no crafted datagram waits for ARP or ND.
struct Bed {
  PrivateNetns a;
  PeerNetns b;
  int ifindex = 0;

  Bed() {
    sh("ip link add rj0 type veth peer name rj0 netns " + b.name());
    sh("sysctl -qw net.ipv6.conf.rj0.accept_dad=0");
    sh("ip netns exec " + b.name() + " sysctl -qw net.ipv6.conf.rj0.accept_dad=0");
    sh("ip link set lo up");
    sh(std::string("ip addr add ") + kLocal4 + "/24 dev rj0");
    sh(std::string("ip addr add ") + kLocal6 + "/64 dev rj0 nodad");
    sh("ip link set rj0 up");
    b.run(std::string("addr add ") + kPeer4 + "/24 dev rj0");
    b.run(std::string("addr add ") + kPeer6 + "/64 dev rj0 nodad");
    b.run("link set rj0 up");
    for (const char* addr : {kLocal4, kLocal6})
      sh("ip netns exec " + b.name() + " ping -c 1 -W 5 " + addr);
    ifindex = static_cast<int>(if_nametoindex("rj0"));
    REQUIRE(ifindex > 0);
  }

  std::unique_ptr<Udp> peer_socket(const std::string& addr, uint16_t port) {
    return in_netns(b.name(), [&] { return std::make_unique<Udp>(addr, port); });
  }
};

}  // namespace mlink::testing
