// link_counters.h - per-link packet and byte totals from the datapath's
// per-slot counters.
//
// The datapath counts by slot (ml_peer_stats.slots[s]), and a peer's slots
// follow the canonical order of its links, so they are renumbered when a
// link joins or leaves the peer: a slot's counter may then hold the history
// of several links. This keeps, per peer, which link owns each slot since
// which counter value, and what each link counted in slots it held before, so
// a link's total (show peers, /metrics) is its own and never goes down.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "mlink_abi.h"

namespace mlink::linkset {

using SlotCounters = std::array<ml_counter, ML_MAX_SLOTS>;

class LinkCounters {
 public:
  // True when the peer's slots already belong to `owners` (link id per slot).
  bool same(uint32_t peer_id, const std::vector<size_t>& owners) const;
  // The peer's slots belong to `owners` from now on; `now` are its slot
  // counters at this moment. A peer id seen for the first time (or again
  // after forget) starts every link at 0.
  void assign(uint32_t peer_id, const std::vector<size_t>& owners, const SlotCounters& now);
  // The total of the link that owns `slot`, given the slot counters now.
  ml_counter total(uint32_t peer_id, size_t slot, const SlotCounters& now) const;
  void forget(uint32_t peer_id);

 private:
  struct Peer {
    std::array<std::optional<size_t>, ML_MAX_SLOTS> owner;
    SlotCounters offset{};
    std::map<size_t, ml_counter> carried;  // by link id: counted in slots held before
  };
  std::map<uint32_t, Peer> peers_;
};

}  // namespace mlink::linkset
