#include "netlink/events.h"

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

namespace mlink::nl {

namespace {

constexpr size_t kReceiveSize = 32768;
// Room for bursts (every neighbour of a busy link changing at once) before
// the kernel drops events and read_all() has to report ENOBUFS.
constexpr int kReceiveBuffer = 1 << 20;

const nlattr* find_attr(const nlmsghdr* nlh, size_t header_size, uint16_t type) {
  struct Ctx {
    uint16_t type;
    const nlattr* found;
  } ctx{type, nullptr};
  mnl_attr_parse(
      nlh, header_size,
      [](const nlattr* attr, void* data) {
        auto* c = static_cast<Ctx*>(data);
        if (mnl_attr_get_type(attr) == c->type) c->found = attr;
        return MNL_CB_OK;
      },
      &ctx);
  return ctx.found;
}

std::optional<Event> parse_link(const nlmsghdr* nlh) {
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(ifinfomsg)) return std::nullopt;
  const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  const nlattr* name = find_attr(nlh, sizeof(*ifi), IFLA_IFNAME);
  LinkEvent ev;
  ev.ifindex = ifi->ifi_index;
  ev.flags = ifi->ifi_flags;
  ev.deleted = nlh->nlmsg_type == RTM_DELLINK;
  if (name && mnl_attr_validate(name, MNL_TYPE_STRING) == 0) ev.name = mnl_attr_get_str(name);
  return ev;
}

std::optional<Event> parse_neigh(const nlmsghdr* nlh) {
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(ndmsg)) return std::nullopt;
  const auto* ndm = static_cast<const ndmsg*>(mnl_nlmsg_get_payload(nlh));
  // RTNLGRP_NEIGH also carries bridge FDB entries (AF_BRIDGE).
  if (ndm->ndm_family != AF_INET && ndm->ndm_family != AF_INET6) return std::nullopt;
  const nlattr* dst = find_attr(nlh, sizeof(*ndm), NDA_DST);
  if (!dst) return std::nullopt;
  NeighEvent ev;
  ev.ifindex = ndm->ndm_ifindex;
  ev.addr.family = ndm->ndm_family;
  if (mnl_attr_get_payload_len(dst) != ev.addr.size()) return std::nullopt;
  std::memcpy(ev.addr.bytes.data(), mnl_attr_get_payload(dst), ev.addr.size());
  ev.state = ndm->ndm_state;
  ev.deleted = nlh->nlmsg_type == RTM_DELNEIGH;
  return ev;
}

std::optional<Event> parse_addr6(const nlmsghdr* nlh) {
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(ifaddrmsg)) return std::nullopt;
  const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
  if (ifa->ifa_family != AF_INET6) return std::nullopt;
  const nlattr* addr = find_attr(nlh, sizeof(*ifa), IFA_ADDRESS);
  if (!addr || mnl_attr_get_payload_len(addr) != 16) return std::nullopt;
  Addr6Event ev;
  ev.ifindex = static_cast<int>(ifa->ifa_index);
  ev.addr.family = AF_INET6;
  std::memcpy(ev.addr.bytes.data(), mnl_attr_get_payload(addr), 16);
  ev.scope = ifa->ifa_scope;
  ev.flags = ifa->ifa_flags;
  // IFA_FLAGS, when present, holds all 32 bits (ifa_flags only the low 8).
  if (const nlattr* f = find_attr(nlh, sizeof(*ifa), IFA_FLAGS);
      f && mnl_attr_validate(f, MNL_TYPE_U32) == 0)
    ev.flags = mnl_attr_get_u32(f);
  ev.deleted = nlh->nlmsg_type == RTM_DELADDR;
  return ev;
}

std::optional<Event> parse_event(const nlmsghdr* nlh) {
  switch (nlh->nlmsg_type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      return parse_link(nlh);
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH:
      return parse_neigh(nlh);
    case RTM_NEWADDR:
    case RTM_DELADDR:
      return parse_addr6(nlh);
    default:
      return std::nullopt;
  }
}

}  // namespace

Result<EventSocket> EventSocket::open() {
  mnl_socket* sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (!sock) return os_error("open rtnetlink event socket", errno);
  EventSocket events(sock);  // owns sock from here on
  if (mnl_socket_bind(sock, 0, MNL_SOCKET_AUTOPID) < 0)
    return os_error("bind rtnetlink event socket", errno);
  for (int group : {RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV6_IFADDR}) {
    if (mnl_socket_setsockopt(sock, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0)
      return os_error("join rtnetlink group " + std::to_string(group), errno);
  }
  // FORCE lifts the rmem_max cap (we are privileged); fall back to the capped
  // size otherwise. Best effort either way: read_all() reports any loss.
  int size = kReceiveBuffer;
  int fd = mnl_socket_get_fd(sock);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  return events;
}

EventSocket::EventSocket(mnl_socket* sock) : sock_(sock) {}

EventSocket::EventSocket(EventSocket&& other) noexcept
    : sock_(std::exchange(other.sock_, nullptr)) {}

EventSocket& EventSocket::operator=(EventSocket&& other) noexcept {
  if (this != &other) {
    if (sock_) mnl_socket_close(sock_);
    sock_ = std::exchange(other.sock_, nullptr);
  }
  return *this;
}

EventSocket::~EventSocket() {
  if (sock_) mnl_socket_close(sock_);
}

int EventSocket::fd() const {
  return mnl_socket_get_fd(sock_);
}

Status EventSocket::read_all(const std::function<void(const Event&)>& on_event) {
  std::vector<char> buf(kReceiveSize);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock_, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) return os_error("rtnetlink events lost, resync needed", ENOBUFS);
      return os_error("read rtnetlink events", errno);
    }
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(m, len);
         m = mnl_nlmsg_next(m, &len)) {
      if (auto ev = parse_event(m)) on_event(*ev);
    }
  }
}

}  // namespace mlink::nl
