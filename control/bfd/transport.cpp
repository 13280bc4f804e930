#include "bfd/transport.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "common/sockaddr.h"

namespace mlink::bfd {
namespace {

constexpr uint16_t kSourcePortFirst = 49152;  // RFC 5881 §4: 49152..65535
constexpr int kTosNetworkControl = 0xc0;      // CS6, as routing protocols use

// A UDP socket bound to the device, sending with hop limit 255 at CS6, its
// socket filter (if any) attached before it is bound.
Result<int> link_socket(const std::string& device, int family, int filter_fd) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return os_error("socket", errno);
  bool v4 = family == AF_INET;
  set_receive_buffer(fd, kBurstReceiveBuffer);
  Status st;
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device.c_str(),
                 static_cast<socklen_t>(device.size())) != 0)
    st = os_error("SO_BINDTODEVICE", errno);
  if (st && v4) st = set_int_option(fd, IPPROTO_IP, IP_TTL, kHopLimit, "IP_TTL");
  if (st && v4) st = set_int_option(fd, IPPROTO_IP, IP_TOS, kTosNetworkControl, "IP_TOS");
  if (st && v4) st = set_int_option(fd, IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL");
  // Group echo goes to the all-nodes group with TTL 255 too, and never to ourselves.
  if (st && v4)
    st = set_int_option(fd, IPPROTO_IP, IP_MULTICAST_TTL, kHopLimit, "IP_MULTICAST_TTL");
  if (st && v4) st = set_int_option(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 0, "IP_MULTICAST_LOOP");
  if (st && !v4) st = set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
  if (st && !v4)
    st = set_int_option(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, kHopLimit, "IPV6_UNICAST_HOPS");
  if (st && !v4)
    st = set_int_option(fd, IPPROTO_IPV6, IPV6_TCLASS, kTosNetworkControl, "IPV6_TCLASS");
  if (st && !v4) st = set_int_option(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT");
  if (st && !v4)
    st = set_int_option(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, kHopLimit, "IPV6_MULTICAST_HOPS");
  if (st && !v4)
    st = set_int_option(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0, "IPV6_MULTICAST_LOOP");
  if (st && !v4)
    st = set_int_option(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF,
                        static_cast<int>(if_nametoindex(device.c_str())), "IPV6_MULTICAST_IF");
  if (st) st = attach_socket_filter(fd, filter_fd);
  if (!st) {
    ::close(fd);
    return Error{"BFD socket on " + device + ": " + st.error().message, st.error().err};
  }
  return fd;
}

// The next datagram that arrived with TTL / hop limit 255; others are counted.
std::optional<Datagram> receive_datagram(int fd, uint64_t* dropped) {
  Datagram d;
  d.bytes.resize(1500);
  auto a = receive_gtsm(fd, d.bytes, kHopLimit, dropped);
  if (!a) return std::nullopt;
  d.bytes.resize(a->size);
  d.src = a->src;
  d.sport = a->sport;
  return d;
}

}  // namespace

Result<LinkSocket> LinkSocket::open(const std::string& device, const IpAddr& local, uint16_t port,
                                    int filter_fd) {
  auto rx = link_socket(device, local.family, filter_fd);
  if (!rx) return rx.error();
  LinkSocket s(*rx, -1, 0, local.family);
  auto at = make_sockaddr(local, port);
  if (bind(s.rx_, reinterpret_cast<sockaddr*>(&at.ss), at.len) != 0)
    return os_error("bind BFD " + local.str() + ":" + std::to_string(port) + " on " + device,
                    errno);
  auto tx = link_socket(device, local.family, filter_fd);
  if (!tx) return tx.error();
  s.tx_ = *tx;
  for (uint32_t p = kSourcePortFirst; p <= 65535; p++) {
    auto src = make_sockaddr(local, static_cast<uint16_t>(p));
    if (bind(s.tx_, reinterpret_cast<sockaddr*>(&src.ss), src.len) == 0) {
      s.sport_ = static_cast<uint16_t>(p);
      return s;
    }
    if (errno != EADDRINUSE) break;
  }
  return os_error("bind a BFD source port on " + device, errno);
}

LinkSocket::LinkSocket(int rx, int tx, uint16_t sport, int family)
    : rx_(rx), tx_(tx), sport_(sport), family_(family) {}

LinkSocket::LinkSocket(LinkSocket&& o) noexcept
    : rx_(std::exchange(o.rx_, -1)),
      tx_(std::exchange(o.tx_, -1)),
      sport_(o.sport_),
      family_(o.family_),
      dropped_hop_limit_(o.dropped_hop_limit_) {}

LinkSocket& LinkSocket::operator=(LinkSocket&& o) noexcept {
  if (this != &o) {
    close_all();
    rx_ = std::exchange(o.rx_, -1);
    tx_ = std::exchange(o.tx_, -1);
    sport_ = o.sport_;
    family_ = o.family_;
    dropped_hop_limit_ = o.dropped_hop_limit_;
  }
  return *this;
}

LinkSocket::~LinkSocket() {
  close_all();
}

void LinkSocket::close_all() {
  if (rx_ >= 0) ::close(rx_);
  if (tx_ >= 0) ::close(tx_);
  rx_ = tx_ = -1;
}

Status LinkSocket::send(const IpAddr& dst, std::span<const uint8_t> bytes, uint16_t dport) {
  auto to = make_sockaddr(dst, dport);
  ssize_t n =
      sendto(tx_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to.ss), to.len);
  if (n < 0) return os_error("send BFD to " + dst.str(), errno);
  return {};
}

namespace {
void log_send_error(const OutDatagram& o, int err) {
  log::debug("send BFD to {} port {}: {}", o.dst.str(), o.port, strerror(err));
}
}  // namespace

size_t LinkSocket::send_many(std::span<const OutDatagram> out) {
  return send_datagrams(tx_, out, log_send_error);
}

size_t EchoSocket::send_many(std::span<const OutDatagram> out) {
  return send_datagrams(fd_, out, log_send_error);
}

std::optional<Datagram> LinkSocket::receive() {
  return receive_datagram(rx_, &dropped_hop_limit_);
}

std::span<const BatchReceiver::Datagram> LinkSocket::receive_batch(BatchReceiver& rx, bool* more) {
  return rx.read(rx_, kHopLimit, &dropped_hop_limit_, more);
}

Result<EchoSocket> EchoSocket::open(const std::string& device, const IpAddr& local, int filter_fd) {
  auto fd = link_socket(device, local.family, filter_fd);
  if (!fd) return fd.error();
  EchoSocket s(*fd);
  auto at = make_sockaddr(local, 0);  // an ephemeral port: never 3785
  if (bind(s.fd_, at.get(), at.len) != 0)
    return os_error("bind BFD echo socket " + local.str() + " on " + device, errno);
  return s;
}

EchoSocket::EchoSocket(EchoSocket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}

EchoSocket& EchoSocket::operator=(EchoSocket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

EchoSocket::~EchoSocket() {
  close();
}

void EchoSocket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status EchoSocket::send(const IpAddr& dst, std::span<const uint8_t> bytes) {
  auto to = make_sockaddr(dst, kEchoPort);
  if (sendto(fd_, bytes.data(), bytes.size(), 0, to.get(), to.len) < 0)
    return os_error("send BFD echo to " + dst.str(), errno);
  return {};
}

std::optional<Datagram> EchoSocket::receive() {
  uint64_t dropped = 0;  // a reflection arrives with 255 or was not ours
  return receive_datagram(fd_, &dropped);
}

std::span<const BatchReceiver::Datagram> EchoSocket::receive_batch(BatchReceiver& rx, bool* more) {
  uint64_t dropped = 0;
  return rx.read(fd_, kHopLimit, &dropped, more);
}

}  // namespace mlink::bfd
