// cleanup.cpp - mlinkd --cleanup: what an agent that died left behind (ml0,
// the programs on the links, the pins, managed neighbours, sysctl changes,
// BFD state) is taken over as a restarting agent would adopt it, and the
// destructor of a clean stop removes it: one teardown, not two. systemd runs
// it (OnFailure=) when a crash-looping agent hits its start limit.
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "common/log.h"

namespace mlink::agent {

Status Agent::cleanup(config::Config cfg) {
  auto rtnl = nl::Rtnl::open();
  if (!rtnl) return rtnl.error();
  std::unique_ptr<Agent> a(new Agent(std::move(cfg), std::move(*rtnl)));
  return a->take_over_remains();
}  // ~Agent removes what was taken over, also after a failure half-way

Status Agent::take_over_remains() {
  if (auto s = refuse_if_running(); !s) return Error{s.error().message + ": stop it first"};
  std::vector<std::string> found;
  if (access(run_path(".sysctl.json").c_str(), F_OK) == 0) {
    if (auto s = open_sysctl_store(); !s) return s;
    found.push_back(std::to_string(sysctl_store_->originals().size()) + " sysctl changes");
  }
  // What is ours, as prepare() decides for a restart: the pins, and a tun of
  // the ML device's name only next to them.
  const std::string pins = pin_dir();
  if (access((pins + "/ml_peers").c_str(), F_OK) == 0) {
    if (nl::TunDevice::is_tun(cfg_.node.ml_device)) {
      auto dev = nl::TunDevice::adopt(cfg_.node.ml_device);
      if (!dev) return dev.error();
      ml_dev_.emplace(std::move(*dev));
      found.push_back(cfg_.node.ml_device);
    }
    auto dp = datapath::BpfDatapath::load(
        {ml_dev_ ? ml_dev_->ifindex() : 0, pins, true, cfg_.node.max_peers});
    if (!dp) return dp.error();
    dp_ = std::move(*dp);
    found.push_back("pins " + pins);
    if (size_t n = remove_left_neighbours())
      found.push_back(std::to_string(n) + " managed neighbours (removed)");
    // ml0's program goes with ml0; a link's stays unless taken over here.
    for (const auto& l : cfg_.links) {
      int idx = static_cast<int>(if_nametoindex(l.device.c_str()));
      auto got = idx ? dp_->adopt_ingress(idx) : Result<bool>(false);
      if (!got)
        log::warn("{}: {}", l.device, got.error().message);
      else if (*got)
        found.push_back("the program on " + l.device);
    }
  }
  for (const char* f : {".bfd.json", ".bfd.json.tmp", ".sock"})  // nobody listens (above)
    if (std::remove(run_path(f).c_str()) == 0) found.push_back(run_path(f) + " (removed)");
  if (found.empty()) {
    log::info("nothing left behind by an agent of node {}", cfg_.node.id);
    return {};
  }
  std::string list;
  for (const auto& f : found) list += (list.empty() ? "" : ", ") + f;
  log::info("left behind by an agent of node {}: {}; removing it", cfg_.node.id, list);
  return {};
}

// The managed entries of the next hops in the peer entries: the dead agent
// made them (neighbours.h) and nobody else will delete them.
size_t Agent::remove_left_neighbours() {
  if (!dp_->adopted()) return 0;  // maps of another ABI: their next hops are unknown
  auto addrs = dp_->peer_addresses();
  if (!addrs) {
    log::warn("{}", addrs.error().message);
    return 0;
  }
  std::set<NeighKey> hops;
  for (const auto& a : *addrs) {
    auto v = dp_->get_peer(a);
    if (!v) continue;
    for (const auto& slot : v->slots) {
      if (!slot.ifindex || (slot.nh_family != AF_INET && slot.nh_family != AF_INET6)) continue;
      NeighKey k{static_cast<int>(slot.ifindex), {}};
      k.addr.family = slot.nh_family;
      std::memcpy(k.addr.bytes.data(), slot.nh, k.addr.size());
      hops.insert(k);
    }
  }
  size_t n = 0;
  for (const auto& k : hops) {
    auto got = rtnl_.neigh_get(k.ifindex, k.addr);
    if (!got || !*got || !(*got)->managed) continue;
    if (auto s = rtnl_.neigh_del(k.ifindex, k.addr); s)
      n++;
    else
      log::warn("{}", s.error().message);
  }
  if (n) log::info("{} managed neighbour entries removed", n);
  return n;
}

}  // namespace mlink::agent
