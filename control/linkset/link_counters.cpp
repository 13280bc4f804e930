#include "linkset/link_counters.h"

namespace mlink::linkset {
namespace {

std::optional<size_t> owner_of(const std::vector<size_t>& owners, size_t slot) {
  if (slot < owners.size()) return owners[slot];
  return std::nullopt;
}

}  // namespace

bool LinkCounters::same(uint32_t peer_id, const std::vector<size_t>& owners) const {
  auto it = peers_.find(peer_id);
  if (it == peers_.end()) return false;
  for (size_t s = 0; s < ML_MAX_SLOTS; s++)
    if (it->second.owner[s] != owner_of(owners, s)) return false;
  return true;
}

void LinkCounters::assign(uint32_t peer_id, const std::vector<size_t>& owners,
                          const SlotCounters& now) {
  auto [it, fresh] = peers_.try_emplace(peer_id);
  Peer& p = it->second;
  for (size_t s = 0; s < ML_MAX_SLOTS; s++) {
    auto next = owner_of(owners, s);
    if (!fresh && p.owner[s] == next) continue;
    if (!fresh && p.owner[s]) {
      ml_counter& c = p.carried[*p.owner[s]];
      c.packets += now[s].packets - p.offset[s].packets;
      c.bytes += now[s].bytes - p.offset[s].bytes;
    }
    p.offset[s] = now[s];
    p.owner[s] = next;
  }
}

ml_counter LinkCounters::total(uint32_t peer_id, size_t slot, const SlotCounters& now) const {
  auto it = peers_.find(peer_id);
  if (slot >= ML_MAX_SLOTS) return {};
  if (it == peers_.end()) return now[slot];  // not tracked (yet): the slot's own count
  const Peer& p = it->second;
  ml_counter out{now[slot].packets - p.offset[slot].packets,
                 now[slot].bytes - p.offset[slot].bytes};
  if (p.owner[slot])
    if (auto c = p.carried.find(*p.owner[slot]); c != p.carried.end()) {
      out.packets += c->second.packets;
      out.bytes += c->second.bytes;
    }
  return out;
}

void LinkCounters::forget(uint32_t peer_id) {
  peers_.erase(peer_id);
}

}  // namespace mlink::linkset
