#include "common/sockaddr.h"

#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace mlink {

SockAddr make_sockaddr(const IpAddr& a, uint16_t port) {
  SockAddr out;
  if (a.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out.ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, a.bytes.data(), 4);
    out.len = sizeof(*sin);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, a.bytes.data(), 16);
    out.len = sizeof(*sin6);
  }
  return out;
}

IpAddr from_sockaddr(const sockaddr_storage& ss, uint16_t* port) {
  IpAddr a;
  a.family = ss.ss_family;
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    std::memcpy(a.bytes.data(), &sin->sin_addr, 4);
    *port = ntohs(sin->sin_port);
  } else {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    std::memcpy(a.bytes.data(), &sin6->sin6_addr, 16);
    *port = ntohs(sin6->sin6_port);
  }
  return a;
}

Status set_int_option(int fd, int level, int name, int value, const char* what) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) return os_error(what, errno);
  return {};
}

int arrival_hop_limit(msghdr& msg) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    bool ttl = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL;
    bool hops = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT;
    if (ttl || hops) {
      int v = 0;
      std::memcpy(&v, CMSG_DATA(c), sizeof(v));
      return v;
    }
  }
  return -1;
}

int arrival_ifindex(msghdr& msg) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo pi{};
      std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
      return pi.ipi_ifindex;
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo pi{};
      std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
      return static_cast<int>(pi.ipi6_ifindex);
    }
  }
  return 0;
}

std::optional<Arrival> receive_gtsm(int fd, std::span<uint8_t> buf, int hop_limit,
                                    uint64_t* dropped) {
  for (;;) {
    sockaddr_storage from{};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(in6_pktinfo))];
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) return std::nullopt;  // EAGAIN, or an error the next poll reports again
    if (arrival_hop_limit(msg) != hop_limit) {
      ++*dropped;
      continue;
    }
    Arrival a;
    a.size = static_cast<size_t>(n);
    a.src = from_sockaddr(from, &a.sport);
    a.ifindex = arrival_ifindex(msg);
    return a;
  }
}

size_t send_datagrams(int fd, std::span<const OutDatagram> out,
                      const std::function<void(const OutDatagram&, int err)>& on_error) {
  constexpr size_t kChunk = 64;
  std::array<SockAddr, kChunk> to;
  std::array<iovec, kChunk> iov;
  std::array<mmsghdr, kChunk> msgs;
  size_t failed = 0;
  for (size_t first = 0; first < out.size(); first += kChunk) {
    size_t n = std::min(kChunk, out.size() - first);
    for (size_t i = 0; i < n; i++) {
      const OutDatagram& o = out[first + i];
      to[i] = make_sockaddr(o.dst, o.port);
      iov[i] = {const_cast<uint8_t*>(o.bytes.data()), o.bytes.size()};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = to[i].get();
      msgs[i].msg_hdr.msg_namelen = to[i].len;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    for (size_t done = 0; done < n;) {  // sendmmsg stops at the first failure
      int r = sendmmsg(fd, msgs.data() + done, static_cast<unsigned>(n - done), MSG_DONTWAIT);
      if (r > 0) {
        done += static_cast<size_t>(r);
        continue;
      }
      on_error(out[first + done], errno);
      failed++;
      done++;
    }
  }
  return failed;
}

void set_receive_buffer(int fd, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) == 0) return;
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

BatchReceiver::BatchReceiver(size_t batch, size_t max_size)
    : max_size_(max_size),
      data_(batch * max_size),
      msgs_(batch),
      iov_(batch),
      names_(batch),
      control_(batch * kControl) {
  static_assert(kControl >= CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(in6_pktinfo)));
  out_.reserve(batch);
}

std::span<const BatchReceiver::Datagram> BatchReceiver::read(int fd, int hop_limit,
                                                             uint64_t* dropped, bool* more) {
  out_.clear();
  size_t batch = msgs_.size();
  for (size_t i = 0; i < batch; i++) {
    iov_[i] = {data_.data() + i * max_size_, max_size_};
    msghdr& h = msgs_[i].msg_hdr;
    h = {};
    h.msg_name = &names_[i];
    h.msg_namelen = sizeof(sockaddr_storage);
    h.msg_iov = &iov_[i];
    h.msg_iovlen = 1;
    h.msg_control = control_.data() + i * kControl;
    h.msg_controllen = kControl;
  }
  int n = recvmmsg(fd, msgs_.data(), static_cast<unsigned>(batch), MSG_DONTWAIT, nullptr);
  *more = n == static_cast<int>(batch);
  for (int i = 0; i < n; i++) {
    msghdr& h = msgs_[i].msg_hdr;
    if (arrival_hop_limit(h) != hop_limit) {
      ++*dropped;
      continue;
    }
    Datagram d;
    d.meta.size = std::min<size_t>(msgs_[i].msg_len, max_size_);
    d.meta.src = from_sockaddr(names_[i], &d.meta.sport);
    d.meta.ifindex = arrival_ifindex(h);
    d.bytes = {data_.data() + size_t(i) * max_size_, d.meta.size};
    out_.push_back(d);
  }
  return out_;
}

Status attach_socket_filter(int fd, int prog_fd) {
  if (prog_fd < 0) return {};
  return set_int_option(fd, SOL_SOCKET, SO_ATTACH_BPF, prog_fd, "SO_ATTACH_BPF");
}

}  // namespace mlink
