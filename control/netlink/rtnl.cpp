#include "netlink/rtnl.h"

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace mlink::nl {

namespace {

// Large enough for one request and for one datagram of a dump reply (the
// kernel sizes dump datagrams after the reader's buffer, up to 32 KiB).
constexpr size_t kRequestSize = 1024;
constexpr size_t kReceiveSize = 32768;

using Buffer = std::array<char, kRequestSize>;

std::string kernel_message(const nlmsghdr* nlh, const nlmsgerr* err) {
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  // With NETLINK_CAP_ACK the request is echoed without its payload.
  size_t offset = sizeof(*err);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
  std::string msg;
  mnl_attr_parse(
      nlh, MNL_ALIGN(offset),
      [](const nlattr* attr, void* data) {
        if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
            mnl_attr_validate(attr, MNL_TYPE_STRING) == 0)
          *static_cast<std::string*>(data) = mnl_attr_get_str(attr);
        return MNL_CB_OK;
      },
      &msg);
  return msg;
}

Error kernel_error(const std::string& what, int err, const std::string& extack) {
  Error e = os_error(what, err);
  if (!extack.empty()) e.message += " (" + extack + ")";
  return e;
}

void put_addr(nlmsghdr* nlh, uint16_t type, const IpAddr& a) {
  mnl_attr_put(nlh, type, a.size(), a.bytes.data());
}

std::optional<IpAddr> get_addr(const nlattr* attr, int family) {
  size_t len = mnl_attr_get_payload_len(attr);
  IpAddr a;
  a.family = family;
  if (len != a.size()) return std::nullopt;
  std::memcpy(a.bytes.data(), mnl_attr_get_payload(attr), len);
  return a;
}

// Attributes of one message, indexed by type (types above kMaxAttr ignored).
constexpr uint16_t kMaxAttr = 64;
using Attrs = std::array<const nlattr*, kMaxAttr + 1>;

Attrs parse_attrs(const nlmsghdr* nlh, size_t header_size) {
  Attrs tb{};
  mnl_attr_parse(
      nlh, header_size,
      [](const nlattr* attr, void* data) {
        uint16_t type = mnl_attr_get_type(attr);
        if (type <= kMaxAttr) (*static_cast<Attrs*>(data))[type] = attr;
        return MNL_CB_OK;
      },
      &tb);
  return tb;
}

LinkInfo parse_link(const nlmsghdr* nlh) {
  const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  Attrs tb = parse_attrs(nlh, sizeof(*ifi));
  LinkInfo link;
  link.ifindex = ifi->ifi_index;
  link.flags = ifi->ifi_flags;
  link.type = ifi->ifi_type;
  if (tb[IFLA_IFNAME] && mnl_attr_validate(tb[IFLA_IFNAME], MNL_TYPE_STRING) == 0)
    link.name = mnl_attr_get_str(tb[IFLA_IFNAME]);
  if (tb[IFLA_MTU] && mnl_attr_validate(tb[IFLA_MTU], MNL_TYPE_U32) == 0)
    link.mtu = mnl_attr_get_u32(tb[IFLA_MTU]);
  return link;
}

std::optional<AddrInfo> parse_addr(const nlmsghdr* nlh) {
  const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
  Attrs tb = parse_attrs(nlh, sizeof(*ifa));
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on
  // point-to-point links, and the only one IPv6 sends otherwise.
  const nlattr* attr = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
  if (!attr) return std::nullopt;
  auto addr = get_addr(attr, ifa->ifa_family);
  if (!addr) return std::nullopt;
  AddrInfo a{static_cast<int>(ifa->ifa_index), Prefix{*addr, ifa->ifa_prefixlen}, ifa->ifa_scope,
             ifa->ifa_flags};
  if (tb[IFA_FLAGS] && mnl_attr_validate(tb[IFA_FLAGS], MNL_TYPE_U32) == 0)
    a.flags = mnl_attr_get_u32(tb[IFA_FLAGS]);
  return a;
}

std::optional<NeighInfo> parse_neigh(const nlmsghdr* nlh) {
  const auto* ndm = static_cast<const ndmsg*>(mnl_nlmsg_get_payload(nlh));
  Attrs tb = parse_attrs(nlh, sizeof(*ndm));
  if (!tb[NDA_DST]) return std::nullopt;
  auto addr = get_addr(tb[NDA_DST], ndm->ndm_family);
  if (!addr) return std::nullopt;
  NeighInfo n;
  n.ifindex = ndm->ndm_ifindex;
  n.addr = *addr;
  n.state = ndm->ndm_state;
  if (tb[NDA_FLAGS_EXT] && mnl_attr_validate(tb[NDA_FLAGS_EXT], MNL_TYPE_U32) == 0)
    n.managed = mnl_attr_get_u32(tb[NDA_FLAGS_EXT]) & NTF_EXT_MANAGED;
  return n;
}

std::string on_ifindex(int ifindex) {
  return " ifindex " + std::to_string(ifindex);
}

}  // namespace

// The kernel's NUD_VALID (not in the uapi headers).
bool neigh_usable(uint16_t nud_state) {
  return nud_state &
         (NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY);
}

std::string nud_state_name(uint16_t nud_state) {
  static constexpr std::pair<uint16_t, const char*> kNames[] = {
      {NUD_INCOMPLETE, "INCOMPLETE"}, {NUD_REACHABLE, "REACHABLE"}, {NUD_STALE, "STALE"},
      {NUD_DELAY, "DELAY"},           {NUD_PROBE, "PROBE"},         {NUD_FAILED, "FAILED"},
      {NUD_NOARP, "NOARP"},           {NUD_PERMANENT, "PERMANENT"},
  };
  if (nud_state == NUD_NONE) return "NONE";
  std::string out;
  for (auto [bit, name] : kNames) {
    if (!(nud_state & bit)) continue;
    if (!out.empty()) out += '|';
    out += name;
    nud_state &= ~bit;
  }
  if (nud_state) {
    char rest[16];
    std::snprintf(rest, sizeof(rest), "0x%x", nud_state);
    out += out.empty() ? rest : std::string("|") + rest;
  }
  return out;
}

Result<Rtnl> Rtnl::open() {
  mnl_socket* sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!sock) return os_error("open rtnetlink socket", errno);
  Rtnl rtnl(sock);  // owns sock from here on
  if (mnl_socket_bind(sock, 0, MNL_SOCKET_AUTOPID) < 0)
    return os_error("bind rtnetlink socket", errno);
  // Extended ACKs carry the kernel's reason for EINVAL & co.; capped ACKs
  // keep the echoed request out of every reply. Both are best effort.
  int on = 1;
  mnl_socket_setsockopt(sock, NETLINK_EXT_ACK, &on, sizeof(on));
  mnl_socket_setsockopt(sock, NETLINK_CAP_ACK, &on, sizeof(on));
  rtnl.portid_ = mnl_socket_get_portid(sock);
  return rtnl;
}

Rtnl::Rtnl(mnl_socket* sock) : sock_(sock) {}

Rtnl::Rtnl(Rtnl&& other) noexcept
    : sock_(std::exchange(other.sock_, nullptr)), seq_(other.seq_), portid_(other.portid_) {}

Rtnl& Rtnl::operator=(Rtnl&& other) noexcept {
  if (this != &other) {
    if (sock_) mnl_socket_close(sock_);
    sock_ = std::exchange(other.sock_, nullptr);
    seq_ = other.seq_;
    portid_ = other.portid_;
  }
  return *this;
}

Rtnl::~Rtnl() {
  if (sock_) mnl_socket_close(sock_);
}

nlmsghdr* Rtnl::start(void* buf, uint16_t type, uint16_t flags) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = ++seq_;
  return nlh;
}

Status Rtnl::exchange(nlmsghdr* nlh, const std::string& what,
                      const std::function<void(const nlmsghdr*)>& on_msg) {
  if (mnl_socket_sendto(sock_, nlh, nlh->nlmsg_len) < 0) return os_error(what, errno);
  std::vector<char> buf(kReceiveSize);
  bool interrupted = false;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock_, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return os_error(what, errno);
    }
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(m, len);
         m = mnl_nlmsg_next(m, &len)) {
      // Replies to an earlier request abandoned halfway (error mid-dump).
      if (m->nlmsg_seq != nlh->nlmsg_seq || m->nlmsg_pid != portid_) continue;
      if (m->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
      if (m->nlmsg_type == NLMSG_ERROR || m->nlmsg_type == NLMSG_DONE) {
        int err = 0;
        std::string extack;
        if (m->nlmsg_type == NLMSG_ERROR) {
          const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
          err = e->error;
          extack = kernel_message(m, e);
        } else if (mnl_nlmsg_get_payload_len(m) >= sizeof(int)) {
          std::memcpy(&err, mnl_nlmsg_get_payload(m), sizeof(int));
        }
        if (err) return kernel_error(what, err, extack);
        // The dump changed under us; its content may be inconsistent.
        if (interrupted) return os_error(what, EAGAIN);
        return {};
      }
      if (m->nlmsg_type >= NLMSG_MIN_TYPE && on_msg) on_msg(m);
    }
  }
}

// ---- links -----------------------------------------------------------------

Result<LinkInfo> Rtnl::link_get(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return os_error("get link '" + name + "'", EINVAL);
  Buffer buf{};
  nlmsghdr* nlh = start(buf.data(), RTM_GETLINK, NLM_F_ACK);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  LinkInfo link;
  Status st = exchange(nlh, "get link " + name, [&](const nlmsghdr* m) { link = parse_link(m); });
  if (!st) return st.error();
  return link;
}

Result<LinkInfo> Rtnl::link_get(int ifindex) {
  Buffer buf{};
  nlmsghdr* nlh = start(buf.data(), RTM_GETLINK, NLM_F_ACK);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  LinkInfo link;
  Status st = exchange(nlh, "get link" + on_ifindex(ifindex),
                       [&](const nlmsghdr* m) { link = parse_link(m); });
  if (!st) return st.error();
  return link;
}

Status Rtnl::link_set_up(int ifindex, bool up) {
  Buffer buf{};
  nlmsghdr* nlh = start(buf.data(), RTM_NEWLINK, NLM_F_ACK);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  ifi->ifi_change = IFF_UP;
  ifi->ifi_flags = up ? IFF_UP : 0;
  return exchange(nlh, std::string("set") + on_ifindex(ifindex) + (up ? " up" : " down"));
}

Status Rtnl::link_set_mtu(int ifindex, uint32_t mtu) {
  Buffer buf{};
  nlmsghdr* nlh = start(buf.data(), RTM_NEWLINK, NLM_F_ACK);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
  return exchange(nlh, "set mtu " + std::to_string(mtu) + " on" + on_ifindex(ifindex));
}

// ---- addresses -------------------------------------------------------------

namespace {

nlmsghdr* put_addr_request(nlmsghdr* nlh, int ifindex, const Prefix& p) {
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = static_cast<uint8_t>(p.addr.family);
  ifa->ifa_prefixlen = p.len;
  ifa->ifa_index = static_cast<uint32_t>(ifindex);
  put_addr(nlh, IFA_LOCAL, p.addr);
  put_addr(nlh, IFA_ADDRESS, p.addr);
  return nlh;
}

}  // namespace

Status Rtnl::addr_add(int ifindex, const Prefix& p) {
  Buffer buf{};
  // EXCL: an address that is already there is the caller's call to make.
  nlmsghdr* nlh = start(buf.data(), RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  put_addr_request(nlh, ifindex, p);
  if (!p.addr.is_v4()) {
    // No duplicate address detection: a tentative address cannot be used as
    // a source for up to a second or two after it is added.
    static_cast<ifaddrmsg*>(mnl_nlmsg_get_payload(nlh))->ifa_flags = IFA_F_NODAD;
    mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
  }
  return exchange(nlh, "add address " + p.str() + " to" + on_ifindex(ifindex));
}

Status Rtnl::addr_del(int ifindex, const Prefix& p) {
  Buffer buf{};
  nlmsghdr* nlh = start(buf.data(), RTM_DELADDR, NLM_F_ACK);
  put_addr_request(nlh, ifindex, p);
  return exchange(nlh, "delete address " + p.str() + " from" + on_ifindex(ifindex));
}

Result<std::vector<AddrInfo>> Rtnl::addr_dump(int ifindex) {
  const std::string what = "dump addresses of" + on_ifindex(ifindex);
  // An address change during the dump interrupts it; try again a few times.
  for (int attempt = 0;; attempt++) {
    Buffer buf{};
    nlmsghdr* nlh = start(buf.data(), RTM_GETADDR, NLM_F_DUMP);
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = AF_UNSPEC;
    std::vector<AddrInfo> out;
    Status st = exchange(nlh, what, [&](const nlmsghdr* m) {
      if (m->nlmsg_type != RTM_NEWADDR) return;
      auto a = parse_addr(m);
      if (a && a->ifindex == ifindex) out.push_back(*a);
    });
    if (st) return out;
    if (st.error().err != EAGAIN || attempt == 2) return st.error();
  }
}

// ---- neighbours ------------------------------------------------------------

namespace {

ndmsg* put_neigh_header(nlmsghdr* nlh, int ifindex, const IpAddr& addr) {
  auto* ndm = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ndmsg)));
  ndm->ndm_family = static_cast<uint8_t>(addr.family);
  ndm->ndm_ifindex = ifindex;
  put_addr(nlh, NDA_DST, addr);
  return ndm;
}

}  // namespace

Status Rtnl::neigh_add_managed(int ifindex, const IpAddr& addr) {
  Buffer buf{};
  nlmsghdr* nlh = start(buf.data(), RTM_NEWNEIGH, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
  ndmsg* ndm = put_neigh_header(nlh, ifindex, addr);
  // What `ip neigh add ADDR dev DEV managed` sends: state NUD_NONE (the kernel
  // rejects PERMANENT with managed, and any other state would be taken as
  // the entry's state) and the flag in NDA_FLAGS_EXT, not in ndm_flags. The
  // kernel then starts resolution itself and re-probes the entry as it ages.
  ndm->ndm_state = NUD_NONE;
  mnl_attr_put_u32(nlh, NDA_FLAGS_EXT, NTF_EXT_MANAGED);
  return exchange(nlh, "add managed neighbour " + addr.str() + " on" + on_ifindex(ifindex));
}

Status Rtnl::neigh_del(int ifindex, const IpAddr& addr) {
  Buffer buf{};
  nlmsghdr* nlh = start(buf.data(), RTM_DELNEIGH, NLM_F_ACK);
  put_neigh_header(nlh, ifindex, addr);
  return exchange(nlh, "delete neighbour " + addr.str() + " on" + on_ifindex(ifindex));
}

Result<std::optional<NeighInfo>> Rtnl::neigh_get(int ifindex, const IpAddr& addr) {
  Buffer buf{};
  nlmsghdr* nlh = start(buf.data(), RTM_GETNEIGH, NLM_F_ACK);
  put_neigh_header(nlh, ifindex, addr);
  std::optional<NeighInfo> found;
  Status st = exchange(nlh, "get neighbour " + addr.str() + " on" + on_ifindex(ifindex),
                       [&](const nlmsghdr* m) {
                         if (m->nlmsg_type == RTM_NEWNEIGH) found = parse_neigh(m);
                       });
  if (!st && st.error().err != ENOENT) return st.error();
  return found;
}

Result<std::vector<NeighInfo>> Rtnl::neigh_dump() {
  // A change during the dump interrupts it; try again a few times.
  for (int attempt = 0;; attempt++) {
    Buffer buf{};
    nlmsghdr* nlh = start(buf.data(), RTM_GETNEIGH, NLM_F_DUMP);
    auto* ndm = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ndmsg)));
    ndm->ndm_family = AF_UNSPEC;
    std::vector<NeighInfo> out;
    Status st = exchange(nlh, "dump neighbours", [&](const nlmsghdr* m) {
      if (m->nlmsg_type != RTM_NEWNEIGH) return;
      if (auto n = parse_neigh(m)) out.push_back(*n);
    });
    if (st) return out;
    if (st.error().err != EAGAIN || attempt == 2) return st.error();
  }
}

}  // namespace mlink::nl
