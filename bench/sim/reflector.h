// reflector.h - BFD echo reflection for the simulated peers, in the kernel: the project's own
// ml_ingress (bpf/mlink.bpf.c) on the simulator's side of every link. It reflects an echo
// (UDP to 3785, TTL 255, sport != 3785) with no map state of ours: ml_locals stays empty, so
// everything else passes to the stack. So the simulator spends nothing per echo, as an mlink
// peer whose datapath reflects. Attached at priority 10 (as mlinkd does); before it, at
// priority 1, sim_drop (drop.bpf.c) drops the echoes to the addresses silence() names: the
// fault injection, one (node, link) at a time, effective when silence() returns.
#pragma once

#include <netinet/in.h>

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

struct mlink_bpf;
struct ml_sim_drop_bpf;

namespace mlink::sim {

class Reflector {
 public:
  // pairs: how many (link, simulated peer) allow() may name.
  static Result<std::unique_ptr<Reflector>> attach(const std::vector<int>& ifindexes,
                                                   uint32_t pairs);
  // Echoes from remote to local (ours) on ifindex are reflected.
  Status allow(int ifindex, in_addr local, in_addr remote);
  ~Reflector();
  // Echoes to addr are dropped (on) or reflected again (off).
  Status silence(in_addr addr, bool on);
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

 private:
  Reflector() = default;
  mlink_bpf* skel_ = nullptr;
  ml_sim_drop_bpf* drop_ = nullptr;
  std::vector<int> attached_;
};

}  // namespace mlink::sim
