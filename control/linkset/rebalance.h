// rebalance.h - load-aware placement of active buckets.
//
// Hashing a handful of flows onto a few links often leaves a link idle (8
// flows on 3 links: 12 % of the time; 4 flows: 56 %), losing a third of the
// aggregate. The agent watches which buckets carried packets in the last
// interval and moves active buckets from the most crowded usable link to the
// least crowded one, until active buckets are spread by weight to within one.
//
// Moves are overrides on top of the deterministic table (buckets.h): an
// override lasts until its bucket goes idle (a whole interval without a
// packet: nothing in flight, so going home reorders nothing) or its link stops
// being usable.
// Decisions depend only on the active set, the links and bucket indices, so
// the two ends of a flow (which see the same buckets active, data one way and
// ACKs the other) make the same moves.
#pragma once

#include <array>
#include <vector>

#include "linkset/buckets.h"

namespace mlink::linkset {

using Activity = std::array<bool, ML_BUCKETS>;

// Buckets worth balancing, from packets per bucket in the last interval: those
// with at least 1/kBusyFraction of the busiest bucket's packets. Mice (a
// control connection, a ping) would otherwise count like elephants and could
// leave a link holding only a mouse.
constexpr uint64_t kBusyFraction = 20;
Activity busy_buckets(const std::array<uint64_t, ML_BUCKETS>& packets);

struct Overrides {
  Overrides() { slot.fill(ML_SLOT_NONE); }
  std::array<uint8_t, ML_BUCKETS> slot;  // ML_SLOT_NONE: no override
  unsigned count() const;
};

// base with every valid override applied; overrides whose link is no longer
// usable (or no longer in the active class) are cleared.
BucketTable apply_overrides(const BucketTable& base, const std::vector<Member>& members,
                            Overrides& ov);

// Clears the overrides of idle buckets (no packet in the interval: nothing in
// flight, so going home reorders nothing), then moves busy buckets until
// balanced. Returns how many buckets it moved.
unsigned rebalance(const BucketTable& base, const std::vector<Member>& members,
                   const Activity& busy, const Activity& idle, Overrides& ov);

// Buckets that carried no packet in the interval.
Activity idle_buckets(const std::array<uint64_t, ML_BUCKETS>& packets);

}  // namespace mlink::linkset
