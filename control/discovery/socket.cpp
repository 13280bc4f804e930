#include "discovery/socket.h"

#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "common/sockaddr.h"
#include "proto/topo/codec.h"

namespace mlink::discovery {

Result<TopoSocket> TopoSocket::open(int family, uint16_t port, int filter_fd) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return os_error("topology socket", errno);
  TopoSocket s(fd, family, port);
  bool v4 = family == AF_INET;
  int hops = topo::kTtl;
  set_receive_buffer(fd, kBurstReceiveBuffer);
  Status st = set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  if (st && v4) st = set_int_option(fd, IPPROTO_IP, IP_TTL, hops, "IP_TTL");
  if (st && v4) st = set_int_option(fd, IPPROTO_IP, IP_MULTICAST_TTL, hops, "IP_MULTICAST_TTL");
  if (st && v4) st = set_int_option(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 0, "IP_MULTICAST_LOOP");
  if (st && v4) st = set_int_option(fd, IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL");
  if (st && v4) st = set_int_option(fd, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
  if (st && !v4) st = set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
  if (st && !v4)
    st = set_int_option(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, hops, "IPV6_UNICAST_HOPS");
  if (st && !v4)
    st = set_int_option(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, hops, "IPV6_MULTICAST_HOPS");
  if (st && !v4)
    st = set_int_option(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0, "IPV6_MULTICAST_LOOP");
  if (st && !v4) st = set_int_option(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT");
  if (st && !v4) st = set_int_option(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
  if (st) st = attach_socket_filter(fd, filter_fd);
  if (!st) return st.error();
  IpAddr any;
  any.family = family;
  auto at = make_sockaddr(any, port);
  if (bind(fd, at.get(), at.len) != 0)
    return os_error("bind topology port " + std::to_string(port), errno);
  return s;
}

TopoSocket::TopoSocket(int fd, int family, uint16_t port)
    : fd_(fd),
      family_(family),
      port_(port),
      batch_(std::make_unique<BatchReceiver>(kBatch, topo::kMaxPacket + 1)) {}

TopoSocket::TopoSocket(TopoSocket&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      family_(o.family_),
      port_(o.port_),
      dropped_hop_limit_(o.dropped_hop_limit_),
      batch_(std::move(o.batch_)) {}

TopoSocket& TopoSocket::operator=(TopoSocket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    family_ = o.family_;
    port_ = o.port_;
    dropped_hop_limit_ = o.dropped_hop_limit_;
    batch_ = std::move(o.batch_);
  }
  return *this;
}

TopoSocket::~TopoSocket() {
  if (fd_ >= 0) ::close(fd_);
}

Status TopoSocket::membership(int ifindex, const IpAddr& group, bool join) {
  int r;
  if (family_ == AF_INET) {
    ip_mreqn m{};
    std::memcpy(&m.imr_multiaddr, group.bytes.data(), 4);
    m.imr_ifindex = ifindex;
    r = setsockopt(fd_, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m, sizeof(m));
  } else {
    ipv6_mreq m{};
    std::memcpy(&m.ipv6mr_multiaddr, group.bytes.data(), 16);
    m.ipv6mr_interface = static_cast<unsigned>(ifindex);
    r = setsockopt(fd_, IPPROTO_IPV6, join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, &m,
                   sizeof(m));
  }
  // Already a member, or (leaving) no longer one, e.g. the device is gone: fine.
  if (r != 0 && errno != (join ? EADDRINUSE : EADDRNOTAVAIL) && !(!join && errno == ENODEV))
    return os_error(std::string(join ? "join " : "leave ") + group.str() + " on ifindex " +
                        std::to_string(ifindex),
                    errno);
  return {};
}

namespace {

// A message's destination and control data (source address and link).
struct Addressed {
  SockAddr to;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))]{};
  iovec iov{};
};

void address(msghdr& msg, Addressed& a, int family, int ifindex, const IpAddr& src,
             const IpAddr& dst, uint16_t port, std::span<const uint8_t> bytes) {
  a.to = make_sockaddr(dst, port);
  a.iov = {const_cast<uint8_t*>(bytes.data()), bytes.size()};
  msg = {};
  msg.msg_name = a.to.get();
  msg.msg_namelen = a.to.len;
  msg.msg_iov = &a.iov;
  msg.msg_iovlen = 1;
  msg.msg_control = a.control;
  cmsghdr* c = reinterpret_cast<cmsghdr*>(a.control);
  if (family == AF_INET) {
    in_pktinfo pi{};
    pi.ipi_ifindex = ifindex;
    std::memcpy(&pi.ipi_spec_dst, src.bytes.data(), 4);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(pi));
    std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    msg.msg_controllen = CMSG_SPACE(sizeof(pi));
  } else {
    in6_pktinfo pi{};
    pi.ipi6_ifindex = static_cast<unsigned>(ifindex);
    std::memcpy(&pi.ipi6_addr, src.bytes.data(), 16);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(pi));
    std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    msg.msg_controllen = CMSG_SPACE(sizeof(pi));
  }
}

}  // namespace

Status TopoSocket::send(int ifindex, const IpAddr& src, const IpAddr& dst,
                        std::span<const uint8_t> bytes) {
  Addressed a;
  msghdr msg{};
  address(msg, a, family_, ifindex, src, dst, port_, bytes);
  if (sendmsg(fd_, &msg, 0) < 0)
    return os_error("send topology packet to " + dst.str() + " from " + src.str(), errno);
  return {};
}

size_t TopoSocket::send_many(std::span<const Outgoing> out) {
  constexpr size_t kChunk = 64;
  std::vector<Addressed> addressed(std::min(out.size(), kChunk));
  std::vector<mmsghdr> msgs(addressed.size());
  size_t failed = 0;
  for (size_t first = 0; first < out.size(); first += kChunk) {
    size_t n = std::min(kChunk, out.size() - first);
    for (size_t i = 0; i < n; i++) {
      const Outgoing& o = out[first + i];
      msgs[i] = {};
      address(msgs[i].msg_hdr, addressed[i], family_, o.ifindex, o.src, o.dst, port_, o.bytes);
    }
    // sendmmsg stops at the first failure: count it, skip it, go on.
    for (size_t done = 0; done < n;) {
      int r = sendmmsg(fd_, msgs.data() + done, static_cast<unsigned>(n - done), MSG_DONTWAIT);
      if (r > 0) {
        done += static_cast<size_t>(r);
        continue;
      }
      const Outgoing& o = out[first + done];
      log::debug("send topology packet to {} from {}: {}", o.dst.str(), o.src.str(),
                 strerror(errno));
      failed++;
      done++;
    }
  }
  return failed;
}

std::optional<Received> TopoSocket::receive() {
  Received r;
  r.bytes.resize(topo::kMaxPacket + 1);
  auto a = receive_gtsm(fd_, r.bytes, topo::kTtl, &dropped_hop_limit_);
  if (!a) return std::nullopt;
  r.bytes.resize(a->size);
  r.src = a->src;
  r.ifindex = a->ifindex;
  return r;
}

std::span<const BatchReceiver::Datagram> TopoSocket::receive_batch(bool* more) {
  return batch_->read(fd_, topo::kTtl, &dropped_hop_limit_, more);
}

}  // namespace mlink::discovery
