// peer_registry.h - which peers exist, and their datapath peer ids.
//
// Peers are reconciled as desired state: want_peers() says what should exist
// from the static plans and what discovery heard, update() adds or removes
// the difference and tells what changed. A peer id indexes the per-peer
// counters in the datapath; an id freed by a departed peer is reused (the
// smallest free one).
//
// Over the limit ([node] max_peers), the peers kept are the first max_peers
// wanted in PeerKey order: static peers (by first ML address), then
// discovered nodes by node id. So which peers are kept is a function of who
// is wanted, never of who came first: the same after a restart, and on a
// segment of discovered nodes the max_peers + 1 with the lowest ids all keep
// each other (with first-come, which pairs both ends keep would be chance).
// A newcomer that ranks inside the limit displaces the last-ranked peer (one
// for one: nothing else moves); a peer that leaves makes room for the
// first-ranked refused one. Discovery's hold time (3.5 s) keeps a node that
// flaps from displacing and readmitting at every lost HELLO.
// Each refused (or displaced) peer is reported once while it stays wanted.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "agent/topology.h"
#include "common/ip.h"

namespace mlink::agent {

struct WantedPeers {
  std::map<PeerKey, PeerPlan> peers;
  std::vector<PeerKey> clashing;  // discovered nodes claiming an ML address in use
};

// Every static peer, and every discovered peer (in the order given) that
// claims no ML address this node or an earlier peer has.
WantedPeers want_peers(const std::vector<Prefix>& own_ml, const std::vector<PeerPlan>& statics,
                       const std::vector<PeerPlan>& discovered);

struct PeerDiff {
  std::vector<PeerPlan> added;                         // with their new peer ids
  std::vector<PeerPlan> removed;                       // their ids are free again
  std::vector<std::pair<PeerPlan, PeerPlan>> changed;  // (before, now): addresses or links
  std::vector<PeerKey> refused;    // newly over the limit (the displaced among them)
  std::vector<PeerKey> displaced;  // held an id, now over the limit (also in removed)
  bool empty() const { return added.empty() && removed.empty() && changed.empty(); }
};

bool same_links(const PeerPlan& a, const PeerPlan& b);

class PeerRegistry {
 public:
  explicit PeerRegistry(uint32_t max_peers);

  PeerDiff update(std::map<PeerKey, PeerPlan> want);
  const std::map<PeerKey, PeerPlan>& peers() const { return peers_; }
  const PeerPlan* find(const PeerKey& key) const;
  const PeerPlan* owner_of(const IpAddr& ml_address) const;
  size_t refused() const { return refused_.size(); }  // peers wanted but over the limit
  uint64_t refusals() const { return refusals_; }     // times a peer became refused
  uint32_t max_peers() const { return max_peers_; }

 private:
  uint32_t max_peers_;
  std::map<PeerKey, PeerPlan> peers_;
  std::set<uint32_t> free_ids_;  // below next_id_
  uint32_t next_id_ = 0;
  std::set<PeerKey> refused_;  // logged once, not at every update
  uint64_t refusals_ = 0;
};

}  // namespace mlink::agent
