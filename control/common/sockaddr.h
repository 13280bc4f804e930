// sockaddr.h - IpAddr <-> sockaddr, socket options and the control messages
// both protocols' sockets read (arrival TTL / hop limit, arrival interface).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <span>

#include "common/ip.h"
#include "common/result.h"

namespace mlink {

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&ss); }
};

SockAddr make_sockaddr(const IpAddr& a, uint16_t port);
IpAddr from_sockaddr(const sockaddr_storage& ss, uint16_t* port);

Status set_int_option(int fd, int level, int name, int value, const char* what);

// From a received message's control data (IP_RECVTTL / IPV6_RECVHOPLIMIT,
// IP_PKTINFO / IPV6_RECVPKTINFO): -1 / 0 when absent.
int arrival_hop_limit(msghdr& msg);
int arrival_ifindex(msghdr& msg);

// GTSM (RFC 5082) receipt for both protocols: the next queued datagram that
// arrived with TTL / hop limit `hop_limit`, read into buf (a longer one is
// cut); the others are dropped and counted. nullopt when none is queued.
struct Arrival {
  size_t size = 0;
  IpAddr src;
  uint16_t sport = 0;
  int ifindex = 0;  // when the socket asked for IP_PKTINFO / IPV6_RECVPKTINFO
};
std::optional<Arrival> receive_gtsm(int fd, std::span<uint8_t> buf, int hop_limit,
                                    uint64_t* dropped);

}  // namespace mlink
