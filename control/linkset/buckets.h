// buckets.h - builds a peer's bucket table from its link set.
//
// The table is a pure function of what both ends of a peer know alike (the
// links in canonical order, their weights and roles, which are usable), so
// both ends build the same table and the symmetric l34 hash keeps the two
// directions of a flow on one link without any negotiation.
//
// Two layers:
//  - the home table: every link of the active class (primaries, or backups
//    while no primary is usable) gets its exact weighted share, up to one
//    bucket, by weighted rendezvous with quotas (a weight change moves the
//    buckets of the link concerned, not the whole table);
//  - buckets whose home link is unusable go to the usable link that wins a
//    weighted rendezvous (highest-random-weight) draw for that bucket.
// Rendezvous never moves a bucket between two links that stay usable, so a
// link leaving or returning rewrites only the buckets it owned.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "mlink_abi.h"

namespace mlink::linkset {

using BucketTable = std::array<uint8_t, ML_BUCKETS>;

struct Member {
  uint8_t slot = 0;     // datapath slot index, < ML_MAX_SLOTS
  uint64_t id = 0;      // identity both ends compute alike (hash of the link subnet)
  uint32_t weight = 1;  // > 0
  bool backup = false;
  bool usable = false;  // session/neighbour up, carrier up, not drained
  auto operator<=>(const Member&) const = default;
};

// members must be in canonical order (both ends sort the same way).
BucketTable build(const std::vector<Member>& members);

// Buckets per slot, for reports and tests.
std::array<unsigned, ML_MAX_SLOTS> share(const BucketTable& table);
// The same for a datapath entry: what show, flow get and /metrics report.
std::array<unsigned, ML_MAX_SLOTS> share(const ml_peer& entry);

}  // namespace mlink::linkset
