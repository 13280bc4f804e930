#include "agent/peer_entries.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace mlink::agent {

unsigned usable_slots(const ml_peer& v) {
  unsigned n = 0;
  for (unsigned s = 0; s < v.nslots && s < ML_MAX_SLOTS; s++) n += v.slots[s].state == ML_SLOT_UP;
  return n;
}

std::vector<linkset::Member> PeerEntries::members(const PeerPlan& plan, const IpAddr& ml_address,
                                                  const SlotUsable& usable) const {
  std::vector<linkset::Member> out;
  for (size_t s = 0; s < plan.links.size(); s++) {
    const auto& pl = plan.links[s];
    auto nh = next_hop_for(pl, ml_address);
    // A drained link keeps its session (proven, ready) but gets no buckets.
    bool ok = nh && !pl.drain && usable(plan, s, *nh);
    out.push_back({static_cast<uint8_t>(s), pl.id, pl.weight, pl.backup, ok});
  }
  return out;
}

const linkset::BucketTable& PeerEntries::table_for(const std::vector<linkset::Member>& m) {
  if (auto it = tables_.find(m); it != tables_.end()) return it->second;
  if (tables_.size() >= kTableCache) tables_.clear();
  return tables_.emplace(m, linkset::build(m)).first->second;
}

ml_peer PeerEntries::build(const PeerPlan& plan, const IpAddr& ml_address, const Links& links,
                           const SlotUsable& usable) {
  ml_peer v{};
  v.peer_id = plan.peer_id;
  v.hash_policy = plan.hash == config::HashPolicy::Socket ? ML_HASH_SOCKET : ML_HASH_L34;
  if (plan.spread == config::Spread::Flowlet) {
    v.spread = ML_SPREAD_FLOWLET;
    v.flowlet_gap_us = plan.flowlet_gap_us;
  }
  v.socket_queue_limit = plan.socket_queue_limit;
  v.nslots = static_cast<__u8>(plan.links.size());
  auto m = members(plan, ml_address, usable);
  for (size_t s = 0; s < plan.links.size(); s++) {
    ml_slot& slot = v.slots[s];
    slot.ifindex = static_cast<__u32>(links.at(plan.links[s].link).ifindex);
    slot.state = m[s].usable ? ML_SLOT_UP : ML_SLOT_DOWN;
    if (auto nh = next_hop_for(plan.links[s], ml_address)) {
      slot.nh_family = static_cast<__u8>(nh->family);
      std::memcpy(slot.nh, nh->bytes.data(), nh->size());
    }
  }
  const auto& base = table_for(m);
  auto ov = overrides_.find(ml_address);  // most peers have none: no lookup makes one
  if (ov == overrides_.end()) {
    std::copy(base.begin(), base.end(), v.buckets);
  } else {
    auto table = linkset::apply_overrides(base, m, ov->second);
    std::copy(table.begin(), table.end(), v.buckets);
  }
  return v;
}

std::vector<EntryWrite> PeerEntries::refresh(const PeerPlan& plan, const Links& links,
                                             const SlotUsable& usable) {
  std::vector<EntryWrite> out;
  for (const auto& a : plan.ml_addresses) {
    ml_peer v = build(plan, a, links, usable);
    if (auto ad = adopted_.find(a); ad != adopted_.end()) {
      // Until our sessions are back Up, the inherited entry forwards better
      // than one with links we have not proven yet.
      if (usable_slots(v) < usable_slots(ad->second)) continue;
      adopted_.erase(ad);
    }
    auto it = written_.find(a);
    if (it != written_.end() && std::memcmp(&it->second, &v, sizeof(v)) == 0) continue;
    if (auto s = dp_.set_peer(a, v); !s) {
      log::error("{}", s.error().message);
      continue;
    }
    EntryWrite w{a, std::nullopt, v};
    if (it != written_.end()) {
      w.before = it->second;
      it->second = v;
    } else {
      written_.emplace(a, v);
    }
    out.push_back(std::move(w));
  }
  return out;
}

std::vector<EntryWrite> PeerEntries::drop(const PeerPlan& plan) {
  std::vector<EntryWrite> out;
  for (const auto& a : plan.ml_addresses) {
    overrides_.erase(a);
    auto it = written_.find(a);
    if (it == written_.end()) continue;
    if (auto s = dp_.del_peer(a); !s) log::warn("{}", s.error().message);
    out.push_back({a, it->second, std::nullopt});
    written_.erase(it);
  }
  return out;
}

void PeerEntries::forget_overrides(const PeerPlan& plan) {
  for (const auto& a : plan.ml_addresses) overrides_.erase(a);
}

void PeerEntries::start_counting(uint32_t peer_id) {
  auto& seen = bucket_seen_[peer_id];
  seen.fill(0);
  if (auto st = dp_.peer_stats(peer_id))
    std::copy(std::begin(st->bucket_packets), std::end(st->bucket_packets), seen.begin());
}

// Which buckets carried packets since the last look decides where active
// buckets go (rebalance.h).
PeerEntries::Rebalanced PeerEntries::rebalance(const PeerPlan& plan, const SlotUsable& usable) {
  Rebalanced out;
  auto st = dp_.peer_stats(plan.peer_id);
  if (!st) return out;
  auto& seen = bucket_seen_[plan.peer_id];
  std::array<uint64_t, ML_BUCKETS> delta{};
  for (size_t b = 0; b < ML_BUCKETS; b++) {
    delta[b] = st->bucket_packets[b] - seen[b];
    seen[b] = st->bucket_packets[b];
    out.active = out.active || delta[b] != 0;
  }
  // An idle peer with no bucket away from home has nothing to move; one with
  // moved buckets has them sent home now that nothing is in flight.
  unsigned away = 0;
  for (const auto& a : plan.ml_addresses)
    if (auto o = overrides_.find(a); o != overrides_.end()) away += o->second.count();
  if (!out.active && away == 0) return out;
  auto busy = linkset::busy_buckets(delta);
  auto idle = linkset::idle_buckets(delta);
  unsigned left = 0;
  for (const auto& a : plan.ml_addresses) {
    auto m = members(plan, a, usable);
    out.moved += linkset::rebalance(table_for(m), m, busy, idle, overrides_[a]);
    left += overrides_[a].count();
  }
  out.changed = out.moved > 0 || left != away;
  return out;
}

std::vector<EntryWrite> PeerEntries::end_adoption(const std::function<bool(const IpAddr&)>& known) {
  std::vector<EntryWrite> out;
  for (const auto& [addr, v] : adopted_) {
    if (written_.count(addr) || known(addr)) continue;
    if (auto s = dp_.del_peer(addr); !s) log::warn("{}", s.error().message);
    out.push_back({addr, v, std::nullopt});
  }
  adopted_.clear();
  return out;
}

const ml_peer* PeerEntries::written(const IpAddr& ml_address) const {
  auto it = written_.find(ml_address);
  return it == written_.end() ? nullptr : &it->second;
}

bool PeerEntries::overridden(const IpAddr& ml_address, uint32_t bucket) const {
  auto it = overrides_.find(ml_address);
  return it != overrides_.end() && it->second.slot[bucket % ML_BUCKETS] != ML_SLOT_NONE;
}

}  // namespace mlink::agent
