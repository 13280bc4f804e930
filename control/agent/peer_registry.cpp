#include "agent/peer_registry.h"

#include <algorithm>
#include <iterator>
#include <set>

#include "config/config.h"
#include "mlink_abi.h"

namespace mlink::agent {

WantedPeers want_peers(const std::vector<Prefix>& own_ml, const std::vector<PeerPlan>& statics,
                       const std::vector<PeerPlan>& discovered) {
  WantedPeers out;
  std::set<IpAddr> claimed;
  for (const auto& p : own_ml) claimed.insert(p.addr);
  for (const auto& p : statics) {
    out.peers.emplace(p.key, p);
    claimed.insert(p.ml_addresses.begin(), p.ml_addresses.end());
  }
  for (const auto& plan : discovered) {
    bool clash = std::any_of(plan.ml_addresses.begin(), plan.ml_addresses.end(),
                             [&](const IpAddr& a) { return claimed.count(a) > 0; });
    if (clash) {
      out.clashing.push_back(plan.key);
      continue;
    }
    claimed.insert(plan.ml_addresses.begin(), plan.ml_addresses.end());
    out.peers.emplace(plan.key, plan);
  }
  return out;
}

bool same_links(const PeerPlan& a, const PeerPlan& b) {
  return std::equal(a.links.begin(), a.links.end(), b.links.begin(), b.links.end(),
                    [](const PeerLink& x, const PeerLink& y) {
                      return x.link == y.link && x.nh4 == y.nh4 && x.nh6 == y.nh6 &&
                             x.weight == y.weight && x.backup == y.backup && x.drain == y.drain;
                    });
}

static_assert(config::kDefaultMaxPeers == ML_DEFAULT_PEERS &&
                  config::kMaxPeersLimit == ML_PEERS_LIMIT,
              "config and datapath agree on the peer limit");

PeerRegistry::PeerRegistry(uint32_t max_peers) : max_peers_(max_peers) {}

PeerDiff PeerRegistry::update(std::map<PeerKey, PeerPlan> want) {
  PeerDiff diff;
  // The kept: the first max_peers in key order (statics, then nodes by id).
  // The rest are refused, whether they are new or held an id until now.
  std::set<PeerKey> over;
  if (want.size() > max_peers_) {
    auto cut = std::next(want.begin(), max_peers_);
    for (auto it = cut; it != want.end(); ++it) over.insert(over.end(), it->first);
    want.erase(cut, want.end());
  }
  for (auto it = peers_.begin(); it != peers_.end();) {
    auto w = want.find(it->first);
    if (w == want.end()) {
      if (over.count(it->first)) diff.displaced.push_back(it->first);
      free_ids_.insert(it->second.peer_id);
      diff.removed.push_back(std::move(it->second));
      it = peers_.erase(it);
      continue;
    }
    w->second.peer_id = it->second.peer_id;
    if (it->second.ml_addresses != w->second.ml_addresses || !same_links(it->second, w->second) ||
        it->second.hash != w->second.hash || it->second.spread != w->second.spread ||
        it->second.flowlet_gap_us != w->second.flowlet_gap_us ||
        it->second.socket_queue_limit != w->second.socket_queue_limit)
      diff.changed.emplace_back(it->second, w->second);
    it->second = std::move(w->second);
    want.erase(w);
    ++it;
  }
  for (auto it = refused_.begin(); it != refused_.end();)
    it = over.count(*it) ? std::next(it) : refused_.erase(it);
  for (const auto& key : over)
    if (refused_.insert(key).second) {
      diff.refused.push_back(key);
      refusals_++;
    }
  for (auto& [key, plan] : want) {  // only new peers are left, and there is room for each
    if (!free_ids_.empty()) {
      plan.peer_id = *free_ids_.begin();
      free_ids_.erase(free_ids_.begin());
    } else {
      plan.peer_id = next_id_++;
    }
    diff.added.push_back(plan);
    peers_.emplace(key, std::move(plan));
  }
  return diff;
}

const PeerPlan* PeerRegistry::find(const PeerKey& key) const {
  auto it = peers_.find(key);
  return it == peers_.end() ? nullptr : &it->second;
}

const PeerPlan* PeerRegistry::owner_of(const IpAddr& ml_address) const {
  for (const auto& [key, p] : peers_)
    if (std::find(p.ml_addresses.begin(), p.ml_addresses.end(), ml_address) != p.ml_addresses.end())
      return &p;
  return nullptr;
}

}  // namespace mlink::agent
