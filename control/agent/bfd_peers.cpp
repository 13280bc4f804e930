#include "agent/bfd_peers.h"

#include "common/log.h"

namespace mlink::agent {

BfdPeerFilter::BfdPeerFilter(SessionDriver& inner, datapath::Datapath& dp, Ifindex ifindex)
    : inner_(inner), dp_(dp), ifindex_(std::move(ifindex)) {}

Result<SessionDriver::Id> BfdPeerFilter::add(const SessionTarget& t) {
  int ifindex = ifindex_(t.device);
  if (ifindex <= 0) return Error{"BFD " + t.name + ": no device " + t.device};
  ml_bfd_key key = datapath::bfd_key(ifindex, t.local, t.remote);
  if (refs_[key]++ == 0)
    if (auto s = dp_.set_bfd_peer(key, true); !s)  // its packets will be refused: say so
      log::warn("BFD {}: {}; its echoes and packets are refused", t.name, s.error().message);
  auto id = inner_.add(t);
  if (!id) {
    if (--refs_[key] == 0) {
      refs_.erase(key);
      (void)dp_.set_bfd_peer(key, false);
    }
    return id;
  }
  keys_[*id] = key;
  if (uint32_t slot = inner_.info(*id).echo_slot; slot != 0)
    if (auto s = dp_.set_bfd_peer(key, true, slot); !s)
      log::warn("BFD {}: {}; its group echoes are not recorded", t.name, s.error().message);
  std::pair link{ifindex, t.local.family};
  auto& la = link_addrs_[link];
  if (la.sessions++ == 0) {  // the first session here names our address on the link
    la.local = t.local;
    if (auto s = dp_.set_link_addr(ifindex, t.local, true); !s)
      log::warn("BFD {}: {}; peers' group echoes are not reflected", t.name, s.error().message);
  }
  link_of_[*id] = link;
  return id;
}

void BfdPeerFilter::remove(Id id) {
  inner_.remove(id);  // its AdminDown goes out first
  auto it = keys_.find(id);
  if (it == keys_.end()) return;
  auto r = refs_.find(it->second);
  if (r != refs_.end() && --r->second == 0) {
    if (auto s = dp_.set_bfd_peer(r->first, false); !s)
      log::warn("BFD: remove an ended session from ml_bfd_peers: {}", s.error().message);
    refs_.erase(r);
  }
  keys_.erase(it);
  if (auto l = link_of_.find(id); l != link_of_.end()) {
    auto la = link_addrs_.find(l->second);
    if (la != link_addrs_.end() && --la->second.sessions == 0) {
      (void)dp_.set_link_addr(l->second.first, la->second.local, false);
      link_addrs_.erase(la);
    }
    link_of_.erase(l);
  }
}

size_t BfdPeerFilter::prune(const std::vector<ml_bfd_key>& present) {
  size_t n = 0;
  for (const auto& k : present)
    if (!refs_.count(k) && dp_.set_bfd_peer(k, false)) n++;
  return n;
}

}  // namespace mlink::agent
