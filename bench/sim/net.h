// net.h - the simulator's UDP sockets: one per (link, port), bound to the link device and
// the wildcard address, so one socket serves every simulated address on the link. Receipt
// tells the destination address of each datagram (IP_PKTINFO: which simulated node was
// addressed) and its TTL (GTSM); sends name their source address per datagram, so one socket
// sends for every node. Both in bounded batches (recvmmsg / sendmmsg). IPv4 only.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"

namespace mlink::sim {

// Options: SO_BINDTODEVICE, SO_REUSEADDR, IP_PKTINFO, IP_RECVTTL, TTL 255 (unicast and
// multicast), no multicast loop, large buffers, non-blocking.
Result<int> open_udp(const std::string& device, uint16_t port);
Status join_group(int fd, int ifindex, in_addr group);

struct Rx {
  in_addr src{};
  uint16_t sport = 0;
  in_addr dst{};  // the header's destination: a node's address, or the group
  int ttl = -1;
  std::span<const uint8_t> bytes;
};

class BatchRx {
 public:
  explicit BatchRx(size_t batch = 64, size_t max_size = 1500);
  // One recvmmsg; valid until the next call. `more` is set when the batch was full.
  std::span<const Rx> read(int fd, bool* more);

 private:
  static constexpr size_t kControl = 64;
  size_t max_size_;
  std::vector<uint8_t> data_;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iov_;
  std::vector<sockaddr_in> names_;
  std::vector<char> control_;
  std::vector<Rx> out_;
};

// Datagrams queued for one socket, each with its own source address; flush() sends them
// with sendmmsg in batches of 64.
class BatchTx {
 public:
  BatchTx(int fd, int ifindex) : fd_(fd), ifindex_(ifindex) {}
  void queue(in_addr src, in_addr dst, uint16_t dport, std::span<const uint8_t> bytes);
  size_t pending() const { return items_.size(); }
  // Returns how many datagrams could not be sent (dropped, counted by the caller).
  size_t flush();

 private:
  struct Item {
    in_addr src, dst;
    uint16_t dport;
    uint32_t off, len;
  };
  int fd_;
  int ifindex_;
  std::vector<uint8_t> data_;
  std::vector<Item> items_;
};

int ifindex_of(const std::string& device);

}  // namespace mlink::sim
