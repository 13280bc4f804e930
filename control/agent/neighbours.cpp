#include "agent/neighbours.h"

#include "common/log.h"
#include "netlink/events.h"
#include "netlink/rtnl.h"

namespace mlink::agent {

Status RtnlNeighbours::add_managed(const NeighKey& n) {
  return rtnl_.neigh_add_managed(n.ifindex, n.addr);
}

Status RtnlNeighbours::remove(const NeighKey& n) {
  return rtnl_.neigh_del(n.ifindex, n.addr);
}

std::optional<uint16_t> RtnlNeighbours::state(const NeighKey& n) {
  auto got = rtnl_.neigh_get(n.ifindex, n.addr);
  if (!got || !*got) return std::nullopt;
  return (*got)->state;
}

Result<std::map<NeighKey, uint16_t>> RtnlNeighbours::states() {
  auto all = rtnl_.neigh_dump();
  if (!all) return all.error();
  std::map<NeighKey, uint16_t> out;
  for (const auto& n : *all) out[{n.ifindex, n.addr}] = n.state;
  return out;
}

ManagedNeighbours::~ManagedNeighbours() {
  for (const auto& [n, state] : nud_)
    if (auto s = ops_.remove(n); !s) log::debug("{}", s.error().message);
}

void ManagedNeighbours::add(const NeighKey& n) {
  if (auto s = ops_.add_managed(n); !s) {
    log::warn("neighbour {}: {}", n.addr.str(), s.error().message);
    return;
  }
  nud_[n] = ops_.state(n).value_or(0);
}

void ManagedNeighbours::sync(const std::set<NeighKey>& want) {
  for (auto it = nud_.begin(); it != nud_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    if (auto s = ops_.remove(it->first); !s) log::debug("{}", s.error().message);
    it = nud_.erase(it);
  }
  for (const auto& n : want)
    if (!nud_.count(n)) add(n);
}

bool ManagedNeighbours::on_event(const nl::NeighEvent& ev) {
  auto it = nud_.find({ev.ifindex, ev.addr});
  if (it == nud_.end()) return false;
  it->second = ev.deleted ? 0 : ev.state;
  return true;
}

bool ManagedNeighbours::usable(const NeighKey& n) const {
  auto it = nud_.find(n);
  return it != nud_.end() && nl::neigh_usable(it->second);
}

void ManagedNeighbours::resync() {
  if (nud_.empty()) return;
  auto table = ops_.states();
  if (!table) {
    log::warn("resync neighbours: {}", table.error().message);
    return;
  }
  for (auto& [n, state] : nud_) {
    std::optional<uint16_t> got;
    if (auto it = table->find(n); it != table->end()) got = it->second;
    if (!got) {
      if (auto s = ops_.add_managed(n); !s)
        log::warn("re-add neighbour {}: {}", n.addr.str(), s.error().message);
      got = ops_.state(n);
    }
    state = got.value_or(0);
  }
}

size_t ManagedNeighbours::renew(int ifindex, bool unresolved_v6_only) {
  size_t count = 0;
  for (auto& [n, state] : nud_) {
    if (n.ifindex != ifindex) continue;
    if (unresolved_v6_only && (n.addr.is_v4() || nl::neigh_usable(state))) continue;
    if (auto s = ops_.remove(n); !s) log::debug("{}", s.error().message);
    if (auto s = ops_.add_managed(n); !s)
      log::warn("re-add neighbour {}: {}", n.addr.str(), s.error().message);
    state = ops_.state(n).value_or(0);
    count++;
  }
  return count;
}

}  // namespace mlink::agent
