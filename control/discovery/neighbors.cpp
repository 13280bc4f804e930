#include "discovery/neighbors.h"

#include <algorithm>

namespace mlink::discovery {

NeighborTable::Change NeighborTable::on_hello(size_t link, const std::string& id, uint64_t seq,
                                              const topo::Hello& h, uint64_t now_us) {
  Change c;
  if (id == self_) return c;  // our own, looped back
  Node& n = nodes_[id];
  n.id = id;
  auto epoch = static_cast<uint32_t>(seq >> 32);
  if (n.ml_addrs != h.ml_addrs) {
    n.ml_addrs = h.ml_addrs;
    c.plan = true;
  }
  auto [it, added] = n.links.try_emplace(link);
  HeardLink& l = it->second;
  // A restarted node (new epoch) is new on every link: it needs our HELLO now.
  c.new_node = added || epoch != n.epoch;
  n.epoch = epoch;
  if (l.link_addrs != h.link_addrs) {
    l.link_addrs = h.link_addrs;
    c.plan = true;
  }
  bool sees_us = std::find(h.seen.begin(), h.seen.end(), self_) != h.seen.end();
  if (sees_us && !l.two_way) {
    l.two_way = true;
    c.plan = true;
  }
  l.expires_us = now_us + uint64_t{h.hold_ms} * 1000;
  return c;
}

bool NeighborTable::on_links(const std::string& id, const topo::Links& l) {
  auto it = nodes_.find(id);
  if (it == nodes_.end() || it->second.policy == l) return false;
  it->second.policy = l;
  return true;
}

bool NeighborTable::expire(uint64_t now_us) {
  bool changed = false;
  for (auto n = nodes_.begin(); n != nodes_.end();) {
    for (auto l = n->second.links.begin(); l != n->second.links.end();) {
      if (l->second.expires_us <= now_us) {
        l = n->second.links.erase(l);
        changed = true;
      } else {
        ++l;
      }
    }
    n = n->second.links.empty() ? nodes_.erase(n) : std::next(n);
  }
  return changed;
}

void NeighborTable::forget_link(size_t link) {
  for (auto& [id, n] : nodes_) n.links.erase(link);
  std::erase_if(nodes_, [](const auto& kv) { return kv.second.links.empty(); });
}

std::vector<std::string> NeighborTable::seen_on(size_t link) const {
  std::vector<std::string> out;
  for (const auto& [id, n] : nodes_)
    if (n.links.count(link) && out.size() < topo::kMaxSeen) out.push_back(id);
  return out;
}

std::optional<uint64_t> NeighborTable::next_expiry() const {
  std::optional<uint64_t> next;
  for (const auto& [id, n] : nodes_)
    for (const auto& [link, l] : n.links)
      if (!next || l.expires_us < *next) next = l.expires_us;
  return next;
}

}  // namespace mlink::discovery
