// events.h - asynchronous link and neighbour changes from rtnetlink.
#pragma once

#include <functional>
#include <string>
#include <variant>

#include "common/ip.h"
#include "common/result.h"

struct mnl_socket;

namespace mlink::nl {

struct LinkEvent {
  int ifindex = 0;
  std::string name;
  unsigned flags = 0;  // IFF_*
  bool deleted = false;
};

struct NeighEvent {
  int ifindex = 0;
  IpAddr addr;
  uint16_t state = 0;  // NUD_*
  bool deleted = false;
};

// An IPv6 address appeared, changed or went. A link can send neighbour
// solicitations only once its link-local address has passed DAD.
struct Addr6Event {
  int ifindex = 0;
  IpAddr addr;
  uint8_t scope = 0;   // RT_SCOPE_*
  uint32_t flags = 0;  // IFA_F_*
  bool deleted = false;
};

using Event = std::variant<LinkEvent, NeighEvent, Addr6Event>;

// Non-blocking socket subscribed to RTNLGRP_LINK, RTNLGRP_NEIGH,
// RTNLGRP_IPV6_IFADDR. Put fd() in
// the event loop; on readability call read_all().
class EventSocket {
 public:
  static Result<EventSocket> open();
  EventSocket(EventSocket&&) noexcept;
  EventSocket& operator=(EventSocket&&) noexcept;
  ~EventSocket();

  int fd() const;
  // Reads every queued message and calls on_event for each event.
  // On ENOBUFS (events lost) returns an error: the caller must resync by
  // querying the state it depends on.
  Status read_all(const std::function<void(const Event&)>& on_event);

 private:
  explicit EventSocket(mnl_socket* sock);
  mnl_socket* sock_ = nullptr;
};

}  // namespace mlink::nl
