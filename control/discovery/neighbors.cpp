#include "discovery/neighbors.h"

#include <algorithm>

namespace mlink::discovery {

NeighborTable::Change NeighborTable::on_hello(size_t link, const std::string& id, uint64_t seq,
                                              const topo::Hello& h, uint64_t now_us) {
  Change c;
  if (id == self_) return c;  // our own, looped back
  auto found = nodes_.find(id);
  if (found == nodes_.end()) {
    if (nodes_.size() >= max_nodes_) {
      refused_++;
      c.refused = true;
      return c;
    }
    found = nodes_.emplace(id, Node{}).first;
  }
  Node& n = found->second;
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
  if (!added) deadlines_.erase({l.expires_us, id, link});
  l.expires_us = now_us + uint64_t{std::min(h.hold_ms, kMaxHoldMs)} * 1000;
  deadlines_.insert({l.expires_us, id, link});
  return c;
}

bool NeighborTable::on_links(const std::string& id, const topo::Links& l) {
  auto it = nodes_.find(id);
  if (it == nodes_.end() || it->second.policy == l) return false;
  it->second.policy = l;
  return true;
}

std::vector<std::string> NeighborTable::expire(uint64_t now_us) {
  std::vector<std::string> changed;
  while (!deadlines_.empty() && std::get<0>(*deadlines_.begin()) <= now_us) {
    auto [when, id, link] = *deadlines_.begin();
    deadlines_.erase(deadlines_.begin());
    auto n = nodes_.find(id);
    if (n == nodes_.end()) continue;
    n->second.links.erase(link);
    if (n->second.links.empty()) nodes_.erase(n);
    if (changed.empty() || changed.back() != id) changed.push_back(id);
  }
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  return changed;
}

std::vector<std::string> NeighborTable::forget_link(size_t link) {
  std::vector<std::string> changed;
  for (auto n = nodes_.begin(); n != nodes_.end();) {
    auto l = n->second.links.find(link);
    if (l == n->second.links.end()) {
      ++n;
      continue;
    }
    deadlines_.erase({l->second.expires_us, n->first, link});
    n->second.links.erase(l);
    changed.push_back(n->first);
    n = n->second.links.empty() ? nodes_.erase(n) : std::next(n);
  }
  cursor_.erase(link);
  return changed;
}

std::vector<std::string> NeighborTable::seen_page(size_t link, size_t max) {
  std::vector<std::string> out;
  if (nodes_.empty() || max == 0) return out;
  auto cur = cursor_.find(link);
  auto start = cur == cursor_.end() ? nodes_.begin() : nodes_.upper_bound(cur->second);
  auto it = start;
  do {
    if (it == nodes_.end()) {
      it = nodes_.begin();
      if (it == start) break;
    }
    if (it->second.links.count(link)) out.push_back(it->first);
    ++it;
  } while (out.size() < max && it != start);
  if (!out.empty()) cursor_[link] = out.back();
  return out;
}

std::vector<std::string> NeighborTable::not_two_way(size_t link) const {
  std::vector<std::string> out;
  for (const auto& [id, n] : nodes_)
    if (auto l = n.links.find(link); l != n.links.end() && !l->second.two_way) out.push_back(id);
  return out;
}

void NeighborTable::set_answered(size_t link, const std::string& id, uint64_t now_us) {
  if (auto n = nodes_.find(id); n != nodes_.end())
    if (auto l = n->second.links.find(link); l != n->second.links.end())
      l->second.answered_us = now_us;
}

std::optional<uint64_t> NeighborTable::next_expiry() const {
  if (deadlines_.empty()) return std::nullopt;
  return std::get<0>(*deadlines_.begin());
}

const Node* NeighborTable::find(const std::string& id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

}  // namespace mlink::discovery
