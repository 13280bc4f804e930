// bfd_peers.h - keeps the datapath's ml_bfd_peers equal to the BFD sessions
// that run. It wraps the SessionDriver: a session's (link, local, remote) is
// written before the session sends its first packet and removed after it
// ends, so the echo reflector and the BFD socket filter (bpf/lib/guard.h)
// answer exactly this host's BFD peers. The value is the session's group echo
// slot, and ml_link_addrs names our address on each link for group reflections.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/sessions.h"
#include "datapath/datapath.h"

namespace mlink::agent {

class BfdPeerFilter final : public SessionDriver {
 public:
  using Ifindex = std::function<int(const std::string& device)>;  // 0: no such device
  BfdPeerFilter(SessionDriver& inner, datapath::Datapath& dp, Ifindex ifindex);

  Result<Id> add(const SessionTarget& t) override;
  void remove(Id id) override;
  SessionInfo info(Id id) const override { return inner_.info(id); }

  // Entries present in the map (an adopted one) that no session wants: gone.
  // Returns how many were removed.
  size_t prune(const std::vector<ml_bfd_key>& present);
  size_t size() const { return refs_.size(); }

 private:
  SessionDriver& inner_;
  datapath::Datapath& dp_;
  Ifindex ifindex_;
  std::map<Id, ml_bfd_key> keys_;                         // by session
  std::map<ml_bfd_key, int, datapath::BfdKeyLess> refs_;  // sessions per key
  // Our address per (link, family) for group reflections, and the sessions that use it.
  struct LinkAddr {
    IpAddr local;
    int sessions = 0;
  };
  std::map<std::pair<int, int>, LinkAddr> link_addrs_;
  std::map<Id, std::pair<int, int>> link_of_;
};

}  // namespace mlink::agent
