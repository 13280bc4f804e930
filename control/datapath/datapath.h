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

// Group echo (mlink_abi.h): the agent writes each group echo it sends and
// reads the reflections ml_ingress recorded, through memory it shares with
// the datapath (mmapable arrays), with no syscall per echo.
class EchoTable {
 public:
  virtual ~EchoTable() = default;
  virtual uint32_t slots() const = 0;                   // ml_echo_seen entries
  virtual ml_echo_seen seen(uint32_t slot) const = 0;   // a copy: the kernel writes on
  virtual void clear_seen(uint32_t slot) = 0;           // before a slot is handed out
  virtual void sent(uint32_t socket, uint32_t ifindex,  // before the echo leaves
                    uint32_t seq, uint64_t nonce) = 0;
  virtual void stop(uint32_t socket) = 0;  // the socket sends no more: nothing matches it
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
  // slot: the session's ml_echo_seen entry + 1 (0: none), where ml_ingress
  // records the reflections of our group echoes from that peer.
  virtual Status set_bfd_peer(const ml_bfd_key& key, bool present, uint32_t slot = 0) = 0;
  // Our address on a link (one per family) that group reflections leave from.
  virtual Status set_link_addr(int ifindex, const IpAddr& local, bool present) = 0;
  // Group echo's shared memory; nullptr when the datapath has none (echoes stay unicast).
  virtual EchoTable* echo_table() { return nullptr; }
};

// Drop reason and ingress counter labels, from the X-macros in mlink_abi.h.
const char* drop_label(unsigned reason);
const char* ingress_label(unsigned counter);

}  // namespace mlink::datapath
