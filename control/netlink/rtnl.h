// rtnl.h - the rtnetlink requests mlinkd makes, over libmnl.
//
// One synchronous NETLINK_ROUTE socket: every request asks for an ACK and
// returns the kernel's error as a Result. Events (link/neighbour changes) come
// through a separate socket, see events.h, so a request never has to skip
// over unrelated notifications.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/ip.h"
#include "common/result.h"

struct mnl_socket;
struct nlmsghdr;

namespace mlink::nl {

struct LinkInfo {
  int ifindex = 0;
  std::string name;
  unsigned flags = 0;  // IFF_* (IFF_UP, IFF_LOWER_UP, IFF_RUNNING ...)
  uint32_t mtu = 0;
  uint16_t type = 0;  // ARPHRD_*
};

struct AddrInfo {
  int ifindex = 0;
  Prefix prefix;       // address with its prefix length
  uint8_t scope = 0;   // RT_SCOPE_*
  uint32_t flags = 0;  // IFA_F_* (IFA_FLAGS when present: all 32 bits)
};

struct NeighInfo {
  int ifindex = 0;
  IpAddr addr;
  uint16_t state = 0;    // NUD_*
  bool managed = false;  // NTF_EXT_MANAGED set
};

// True for NUD states in which the kernel sends without queueing
// (REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP).
bool neigh_usable(uint16_t nud_state);
std::string nud_state_name(uint16_t nud_state);

class Rtnl {
 public:
  static Result<Rtnl> open();
  Rtnl(Rtnl&&) noexcept;
  Rtnl& operator=(Rtnl&&) noexcept;
  ~Rtnl();

  Result<LinkInfo> link_get(const std::string& name);
  Result<LinkInfo> link_get(int ifindex);
  Status link_set_up(int ifindex, bool up);
  Status link_set_mtu(int ifindex, uint32_t mtu);

  Status addr_add(int ifindex, const Prefix& p);  // IFA_F_NODAD for IPv6
  Status addr_del(int ifindex, const Prefix& p);
  Result<std::vector<AddrInfo>> addr_dump(int ifindex);  // both families

  // A managed neighbour entry (NTF_EXT_MANAGED, kernel >= 5.16): the kernel
  // resolves it at once and keeps it resolved, so a next hop in a peer's link
  // set never sits INCOMPLETE with packets queued (docs/FINDINGS.md,
  // "Managed neighbour entries").
  Status neigh_add_managed(int ifindex, const IpAddr& addr);
  Status neigh_del(int ifindex, const IpAddr& addr);
  Result<std::optional<NeighInfo>> neigh_get(int ifindex, const IpAddr& addr);
  // Every neighbour entry of this namespace, both families: one dump.
  Result<std::vector<NeighInfo>> neigh_dump();

 private:
  explicit Rtnl(mnl_socket* sock);
  // Puts a request header (next sequence number, NLM_F_REQUEST) in buf.
  nlmsghdr* start(void* buf, uint16_t type, uint16_t flags);
  // Sends nlh and hands every reply to on_msg until the ACK or NLMSG_DONE. A
  // kernel error becomes "<what>: <strerror> (<extack message>)".
  Status exchange(nlmsghdr* nlh, const std::string& what,
                  const std::function<void(const nlmsghdr*)>& on_msg = {});
  mnl_socket* sock_ = nullptr;
  uint32_t seq_ = 0;
  uint32_t portid_ = 0;
};

}  // namespace mlink::nl
