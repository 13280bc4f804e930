#include "net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

namespace mlink::sim {
namespace {

Status opt(int fd, int level, int name, int value, const char* what) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) return os_error(what, errno);
  return {};
}

}  // namespace

int ifindex_of(const std::string& device) {
  return static_cast<int>(if_nametoindex(device.c_str()));
}

Result<int> open_udp(const std::string& device, uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return os_error("socket", errno);
  auto fail = [fd](Error e) -> Result<int> {
    close(fd);
    return e;
  };
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device.c_str(),
                 static_cast<socklen_t>(device.size())) != 0)
    return fail(os_error("SO_BINDTODEVICE " + device, errno));
  struct Opt {
    int level, name, value;
    const char* what;
  };
  const Opt opts[] = {{SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"},
                      {IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO"},
                      {IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL"},
                      {IPPROTO_IP, IP_TTL, 255, "IP_TTL"},
                      {IPPROTO_IP, IP_MULTICAST_TTL, 255, "IP_MULTICAST_TTL"},
                      {IPPROTO_IP, IP_MULTICAST_LOOP, 0, "IP_MULTICAST_LOOP"}};
  for (const auto& [level, name, value, what] : opts)
    if (auto s = opt(fd, level, name, value, what); !s) return fail(s.error());
  // Bursts (every node answering the agent at once, 4,000 sessions' packets) must not
  // overflow our queues: what the simulator drops would look like the agent's fault.
  int big = 8 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) != 0)
    (void)opt(fd, SOL_SOCKET, SO_RCVBUF, big, "SO_RCVBUF");
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) != 0)
    (void)opt(fd, SOL_SOCKET, SO_SNDBUF, big, "SO_SNDBUF");
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(port);
  at.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof(at)) != 0)
    return fail(os_error("bind " + device + " port " + std::to_string(port), errno));
  return fd;
}

Status join_group(int fd, int ifindex, in_addr group) {
  ip_mreqn m{};
  m.imr_multiaddr = group;
  m.imr_ifindex = ifindex;
  if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) != 0)
    return os_error("IP_ADD_MEMBERSHIP", errno);
  return {};
}

BatchRx::BatchRx(size_t batch, size_t max_size)
    : max_size_(max_size),
      data_(batch * max_size),
      msgs_(batch),
      iov_(batch),
      names_(batch),
      control_(batch * kControl),
      out_(batch) {}

std::span<const Rx> BatchRx::read(int fd, bool* more) {
  size_t n = msgs_.size();
  for (size_t i = 0; i < n; i++) {
    iov_[i] = {data_.data() + i * max_size_, max_size_};
    msghdr& h = msgs_[i].msg_hdr;
    h = {};
    h.msg_name = &names_[i];
    h.msg_namelen = sizeof(names_[i]);
    h.msg_iov = &iov_[i];
    h.msg_iovlen = 1;
    h.msg_control = control_.data() + i * kControl;
    h.msg_controllen = kControl;
  }
  int got = recvmmsg(fd, msgs_.data(), static_cast<unsigned>(n), MSG_DONTWAIT, nullptr);
  *more = got == static_cast<int>(n);
  if (got <= 0) return {};
  size_t k = 0;
  for (int i = 0; i < got; i++) {
    msghdr& h = msgs_[i].msg_hdr;
    Rx r;
    r.src = names_[i].sin_addr;
    r.sport = ntohs(names_[i].sin_port);
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level != IPPROTO_IP) continue;
      if (c->cmsg_type == IP_TTL) {
        int ttl = 0;
        std::memcpy(&ttl, CMSG_DATA(c), sizeof(ttl));
        r.ttl = ttl;
      } else if (c->cmsg_type == IP_PKTINFO) {
        in_pktinfo pi{};
        std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
        r.dst = pi.ipi_addr;
      }
    }
    r.bytes = {data_.data() + i * max_size_, std::min<size_t>(msgs_[i].msg_len, max_size_)};
    out_[k++] = r;
  }
  return {out_.data(), k};
}

void BatchTx::queue(in_addr src, in_addr dst, uint16_t dport, std::span<const uint8_t> bytes) {
  items_.push_back(
      {src, dst, dport, static_cast<uint32_t>(data_.size()), static_cast<uint32_t>(bytes.size())});
  data_.insert(data_.end(), bytes.begin(), bytes.end());
}

size_t BatchTx::flush() {
  constexpr size_t kBatch = 64;
  constexpr size_t kControl = CMSG_SPACE(sizeof(in_pktinfo));
  size_t failed = 0;
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  sockaddr_in names[kBatch];
  alignas(cmsghdr) char control[kBatch][kControl];
  for (size_t base = 0; base < items_.size(); base += kBatch) {
    size_t n = std::min(kBatch, items_.size() - base);
    for (size_t i = 0; i < n; i++) {
      const Item& it = items_[base + i];
      names[i] = {};
      names[i].sin_family = AF_INET;
      names[i].sin_port = htons(it.dport);
      names[i].sin_addr = it.dst;
      iov[i] = {data_.data() + it.off, it.len};
      msghdr& h = msgs[i].msg_hdr;
      h = {};
      h.msg_name = &names[i];
      h.msg_namelen = sizeof(names[i]);
      h.msg_iov = &iov[i];
      h.msg_iovlen = 1;
      std::memset(control[i], 0, kControl);
      h.msg_control = control[i];
      h.msg_controllen = kControl;
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      in_pktinfo pi{};
      pi.ipi_ifindex = ifindex_;
      pi.ipi_spec_dst = it.src;
      std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    }
    // sendmmsg stops at the first failure: count that one, go on after it.
    size_t done = 0;
    while (done < n) {
      int r = sendmmsg(fd_, msgs + done, static_cast<unsigned>(n - done), MSG_DONTWAIT);
      if (r > 0) {
        done += static_cast<size_t>(r);
      } else {
        failed++;
        done++;
      }
    }
  }
  items_.clear();
  data_.clear();
  return failed;
}

}  // namespace mlink::sim
