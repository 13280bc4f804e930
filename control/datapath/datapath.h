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
// A BFD session's entry in ml_bfd_peers; local and remote of one family.
ml_bfd_key bfd_key(int ifindex, const IpAddr& local, const IpAddr& remote);
struct BfdKeyLess {  // for std::set / std::map (ml_bfd_key is a C struct)
  bool operator()(const ml_bfd_key& a, const ml_bfd_key& b) const;
};

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
  // A BFD session's (link, local, remote): echoes from it are reflected and
  // its packets reach the BFD sockets; removed, they are refused.
  virtual Status set_bfd_peer(const ml_bfd_key& key, bool present) = 0;
};

// Drop reason and ingress counter labels, from the X-macros in mlink_abi.h.
const char* drop_label(unsigned reason);
const char* ingress_label(unsigned counter);

}  // namespace mlink::datapath
