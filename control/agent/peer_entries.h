// peer_entries.h - writes every peer's entries (ml_peers: one per ML address)
// through the Datapath interface, only when a value changed.
//
// An entry is a pure function of the peer's plan, which slots are usable
// now, and the rebalancer's overrides (linkset/rebalance.h), so writing it
// again after any event is always right, and the map sees only real changes.
//
// Restart adoption: the entries an agent that died left in the maps keep
// forwarding until ours are at least as good (as many usable slots), or
// until end_adoption().
#pragma once

#include <array>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "agent/topology.h"
#include "common/ip.h"
#include "datapath/datapath.h"
#include "linkset/buckets.h"
#include "linkset/rebalance.h"
#include "mlink_abi.h"

namespace mlink::agent {

// Whether slot `slot` of the plan may carry traffic to `next_hop` now
// (carrier, neighbour entry, session); drain and a missing next hop are
// decided here.
using SlotUsable = std::function<bool(const PeerPlan&, size_t slot, const IpAddr& next_hop)>;

struct EntryWrite {  // one entry written (or deleted)
  IpAddr ml_address;
  std::optional<ml_peer> before;  // nullopt: a new entry
  std::optional<ml_peer> now;     // nullopt: deleted
};

unsigned usable_slots(const ml_peer& v);

class PeerEntries {
 public:
  explicit PeerEntries(datapath::Datapath& dp) : dp_(dp) {}

  // The entry of one of the plan's addresses as it should be now.
  ml_peer build(const PeerPlan& plan, const IpAddr& ml_address, const Links& links,
                const SlotUsable& usable);
  // Writes the plan's entries that changed.
  std::vector<EntryWrite> refresh(const PeerPlan& plan, const Links& links,
                                  const SlotUsable& usable);
  // Deletes the plan's entries (a peer gone, or its addresses changed).
  std::vector<EntryWrite> drop(const PeerPlan& plan);
  // The plan's slots were renumbered: its load-aware moves no longer apply.
  void forget_overrides(const PeerPlan& plan);
  // Moves active buckets by the load seen since the last call (bucket
  // counters of the peer's id); returns how many moved. Entries are written
  // by the next refresh().
  struct Rebalanced {
    unsigned moved = 0;    // active buckets moved to another link
    bool active = false;   // the peer carried packets since the last look
    bool changed = false;  // buckets moved, or went home: the entries need rewriting
  };
  Rebalanced rebalance(const PeerPlan& plan, const SlotUsable& usable);
  // Remembers the bucket counters a new peer's id starts from (counters of
  // an earlier peer with that id).
  void start_counting(uint32_t peer_id);
  void forget_counting(uint32_t peer_id) { bucket_seen_.erase(peer_id); }

  void adopt(std::map<IpAddr, ml_peer> inherited) { adopted_ = std::move(inherited); }
  // Deletes what was inherited for an address no peer has now; the rest is
  // overwritten by the next refresh().
  std::vector<EntryWrite> end_adoption(const std::function<bool(const IpAddr&)>& known);
  bool adopting() const { return !adopted_.empty(); }

  const ml_peer* written(const IpAddr& ml_address) const;
  bool overridden(const IpAddr& ml_address, uint32_t bucket) const;

 private:
  // linkset::build is pure and costly (a sort, a log() per bucket and link);
  // peers on the same fabric share link ids and weights, so most ask for the
  // same few tables. Kept for at most kTableCache member sets.
  const linkset::BucketTable& table_for(const std::vector<linkset::Member>& m);
  static constexpr size_t kTableCache = 1024;
  std::map<std::vector<linkset::Member>, linkset::BucketTable> tables_;
  std::vector<linkset::Member> members(const PeerPlan& plan, const IpAddr& ml_address,
                                       const SlotUsable& usable) const;

  datapath::Datapath& dp_;
  std::map<IpAddr, ml_peer> written_;               // last value written per ML address
  std::map<IpAddr, linkset::Overrides> overrides_;  // load-aware moves per ML address
  std::map<uint32_t, std::array<uint64_t, ML_BUCKETS>> bucket_seen_;  // per peer id
  std::map<IpAddr, ml_peer> adopted_;
};

}  // namespace mlink::agent
