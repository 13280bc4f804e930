// datapath.h - what the agent needs from the datapath, behind an interface so
// agent logic can be unit-tested with a fake (as Katran does).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "common/ip.h"
#include "common/result.h"
#include "mlink_abi.h"

namespace mlink::datapath {

ml_addr to_key(const IpAddr& a);
IpAddr from_key(const ml_addr& k);

class Datapath {
 public:
  virtual ~Datapath() = default;
  // One write replaces the peer's whole link set atomically.
  virtual Status set_peer(const IpAddr& addr, const ml_peer& value) = 0;
  virtual Status del_peer(const IpAddr& addr) = 0;
  virtual Status add_local(const IpAddr& addr) = 0;
  // Egress counters of one peer (per slot, per bucket), summed over CPUs.
  virtual Result<ml_peer_stats> peer_stats(uint32_t peer_id) = 0;
  virtual Result<std::array<ml_counter, ML_DROP_MAX>> drops() = 0;
};

// Drop reason labels, from the X-macro in mlink_abi.h.
const char* drop_label(unsigned reason);

}  // namespace mlink::datapath
