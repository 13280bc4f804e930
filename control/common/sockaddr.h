// sockaddr.h - IpAddr <-> sockaddr, socket options and the control messages
// both protocols' sockets read (arrival TTL / hop limit, arrival interface).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

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

// A receive buffer of `bytes` (SO_RCVBUFFORCE, which root may set past
// net.core.rmem_max; else SO_RCVBUF, capped there), so a burst (every node of
// a segment answering at once, thousands of echoes coming back together) is
// queued instead of dropped. Best effort: the default stays on failure.
void set_receive_buffer(int fd, int bytes);
// Attaches a BPF socket filter (SO_ATTACH_BPF); prog_fd < 0: none.
Status attach_socket_filter(int fd, int prog_fd);
inline constexpr int kBurstReceiveBuffer = 4 << 20;

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

// Datagrams to send with sendmmsg, to several destinations at once; a
// failed one is skipped (and given to on_error with its errno), the rest
// still go. Returns how many failed.
struct OutDatagram {
  IpAddr dst;
  uint16_t port = 0;
  std::span<const uint8_t> bytes;
};
size_t send_datagrams(int fd, std::span<const OutDatagram> out,
                      const std::function<void(const OutDatagram&, int err)>& on_error);

// The same receipt, up to `batch` datagrams per recvmmsg call, so a busy
// socket costs one system call per batch instead of one per datagram. Its
// buffers are reused: what read() returns is valid until the next read().
class BatchReceiver {
 public:
  struct Datagram {
    Arrival meta;
    std::span<const uint8_t> bytes;
  };
  BatchReceiver(size_t batch, size_t max_size);
  // One recvmmsg: what was queued (at most `batch`), less what failed GTSM
  // (counted in *dropped). `more` is set when the batch was full.
  std::span<const Datagram> read(int fd, int hop_limit, uint64_t* dropped, bool* more);

 private:
  static constexpr size_t kControl = 64;  // CMSG_SPACE(int) + CMSG_SPACE(in6_pktinfo), rounded up
  size_t max_size_;
  std::vector<uint8_t> data_;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iov_;
  std::vector<sockaddr_storage> names_;
  std::vector<char> control_;
  std::vector<Datagram> out_;
};

}  // namespace mlink
