// socket.h - the topology protocol's UDP socket of one address family.
//
// One socket per family serves every link (docs/PROTOCOL.md, "Transport"):
// bound to the protocol port on the wildcard address, member of the
// link-local group on each link, and told on receipt which link a datagram
// came in on. Sends carry TTL / hop limit 255 and leave by the link given
// with each send; receipt checks 255 (GTSM) before anything else.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/ip.h"
#include "common/result.h"
#include "common/sockaddr.h"

namespace mlink::discovery {

// One datagram to send: from src out of the link ifindex to dst.
struct Outgoing {
  int ifindex = 0;
  IpAddr src;
  IpAddr dst;
  std::vector<uint8_t> bytes;
};

struct Received {
  std::vector<uint8_t> bytes;  // up to kMaxPacket + 1: a longer datagram is cut there
  IpAddr src;
  int ifindex = 0;
};

class TopoSocket {
 public:
  // filter_fd: a socket filter (the datapath's guard), or -1.
  static Result<TopoSocket> open(int family, uint16_t port, int filter_fd = -1);
  TopoSocket(TopoSocket&&) noexcept;
  TopoSocket& operator=(TopoSocket&&) noexcept;
  ~TopoSocket();

  int fd() const { return fd_; }
  int family() const { return family_; }
  Status join(int ifindex, const IpAddr& group) { return membership(ifindex, group, true); }
  Status leave(int ifindex, const IpAddr& group) { return membership(ifindex, group, false); }
  // Sends from src out of the link ifindex (multicast or unicast dst).
  Status send(int ifindex, const IpAddr& src, const IpAddr& dst, std::span<const uint8_t> bytes);
  // Several datagrams with one sendmmsg; returns how many failed (each is
  // logged at debug level).
  size_t send_many(std::span<const Outgoing> out);
  // The next datagram that arrived with TTL 255; nullopt when none is queued.
  std::optional<Received> receive();
  // Up to kBatch datagrams with one recvmmsg (valid until the next call);
  // `more` tells the batch was full.
  static constexpr size_t kBatch = 64;
  std::span<const BatchReceiver::Datagram> receive_batch(bool* more);
  uint64_t dropped_hop_limit() const { return dropped_hop_limit_; }

 private:
  TopoSocket(int fd, int family, uint16_t port);
  Status membership(int ifindex, const IpAddr& group, bool join);
  int fd_ = -1;
  int family_ = 0;
  uint16_t port_ = 0;
  uint64_t dropped_hop_limit_ = 0;
  std::unique_ptr<BatchReceiver> batch_;  // on the heap: kBatch full-size buffers
};

}  // namespace mlink::discovery
