#include "agent/topology.h"

#include <algorithm>

#include "linkset/buckets.h"

namespace mlink::agent {

uint64_t subnet_id(const Prefix& subnet) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a over family, length and network bytes
  auto add = [&h](uint8_t b) { h = (h ^ b) * 1099511628211ULL; };
  Prefix n = subnet.network();
  add(static_cast<uint8_t>(n.addr.family));
  add(n.len);
  for (size_t i = 0; i < n.addr.size(); i++) add(n.addr.bytes[i]);
  return h;
}

std::optional<IpAddr> next_hop_for(const PeerLink& l, const IpAddr& ml_addr) {
  if (ml_addr.is_v4()) return l.nh4 ? l.nh4 : l.nh6;
  return l.nh6;
}

namespace {

std::optional<Prefix> covering_subnet(const LocalLink& link, const IpAddr& nh) {
  for (const auto& p : link.addresses)
    if (p.contains(nh)) return p.network();
  return std::nullopt;
}

std::variant<PeerLink, PlanError> plan_link(const config::Via& via, size_t peer_index,
                                            size_t via_index, size_t link_id,
                                            const LocalLink& link) {
  PeerLink pl;
  pl.link = link_id;
  std::optional<Prefix> subnet4, subnet6;
  for (size_t i = 0; i < via.address.size(); i++) {
    const IpAddr& nh = via.address[i];
    auto subnet = covering_subnet(link, nh);
    if (!subnet)
      return PlanError{via.line,
                       "peer[" + std::to_string(peer_index) + "].via[" + std::to_string(via_index) +
                           "].address[" + std::to_string(i) + "]",
                       "next hop " + nh.str() + " is in no subnet of " + via.device};
    (nh.is_v4() ? pl.nh4 : pl.nh6) = nh;
    (nh.is_v4() ? subnet4 : subnet6) = subnet;
  }
  pl.subnet = subnet4 ? *subnet4 : *subnet6;  // both ends prefer the IPv4 subnet alike
  pl.id = subnet_id(pl.subnet);
  pl.weight = link.weight;
  pl.backup = link.backup;
  pl.drain = link.drain;
  return pl;
}

void sort_canonical(std::vector<PeerLink>& links) {
  std::sort(links.begin(), links.end(),
            [](const PeerLink& a, const PeerLink& b) { return a.subnet < b.subnet; });
}

}  // namespace

std::variant<std::vector<PeerPlan>, PlanError> plan_peers(const config::Config& cfg,
                                                          const Links& links) {
  std::vector<PeerPlan> plans;
  if (cfg.peers.size() > cfg.node.max_peers)  // config::load refuses it already
    return PlanError{cfg.peers[cfg.node.max_peers].line, "peer",
                     "at most node.max_peers = " + std::to_string(cfg.node.max_peers) + " peers"};
  for (size_t p = 0; p < cfg.peers.size(); p++) {
    const auto& peer = cfg.peers[p];
    PeerPlan plan;
    // Keyed by address, not position: a reload that adds or removes another
    // [[peer]] leaves this one (and its peer id and entries) untouched.
    plan.key = PeerKey::of_static(peer.ml_address.front());
    plan.peer_id = static_cast<uint32_t>(p);
    plan.ml_addresses = peer.ml_address;
    plan.hash = peer.hash.value_or(cfg.node.hash);
    plan.spread = peer.spread.value_or(cfg.node.spread);
    plan.flowlet_gap_us = cfg.node.flowlet_gap_us;
    plan.socket_queue_limit =
        config::socket_queue_limit_for(cfg.node.socket_queue_limit, plan.spread);
    for (size_t v = 0; v < peer.via.size(); v++) {
      auto link = std::find_if(links.begin(), links.end(), [&](const auto& kv) {
        return kv.second.device == peer.via[v].device;
      });
      if (link == links.end()) continue;
      auto r = plan_link(peer.via[v], p, v, link->first, link->second);
      if (auto* e = std::get_if<PlanError>(&r)) return *e;
      plan.links.push_back(std::get<PeerLink>(r));
    }
    sort_canonical(plan.links);
    if (plan.links.size() > ML_MAX_SLOTS)
      return PlanError{peer.line, "peer[" + std::to_string(p) + "].via",
                       "at most " + std::to_string(ML_MAX_SLOTS) + " links per peer"};
    plans.push_back(std::move(plan));
  }
  return plans;
}

std::optional<PeerPlan> plan_discovered(const discovery::Node& node, const Links& links,
                                        const Spreading& spreading) {
  PeerPlan plan;
  plan.key = PeerKey::of_node(node.id);
  plan.hash = spreading.hash;
  plan.spread = spreading.spread;
  plan.flowlet_gap_us = spreading.flowlet_gap_us;
  plan.socket_queue_limit =
      config::socket_queue_limit_for(spreading.socket_queue_limit, spreading.spread);
  for (const auto& p : node.ml_addrs) plan.ml_addresses.push_back(p.addr);
  for (const auto& [li, heard] : node.links) {
    auto link = links.find(li);
    if (!heard.two_way || link == links.end()) continue;
    const LocalLink& local = link->second;
    PeerLink pl;
    pl.link = li;
    std::optional<Prefix> subnet4, subnet6;
    for (const auto& a : heard.link_addrs) {
      auto subnet = covering_subnet(local, a.addr);
      if (!subnet || subnet->len != a.len) continue;  // not on our subnet of this link
      auto& nh = a.addr.is_v4() ? pl.nh4 : pl.nh6;
      if (nh) continue;
      nh = a.addr;
      (a.addr.is_v4() ? subnet4 : subnet6) = subnet;
    }
    if (!pl.nh4 && !pl.nh6) continue;
    pl.subnet = subnet4 ? *subnet4 : *subnet6;
    pl.id = subnet_id(pl.subnet);
    pl.weight = local.weight;
    pl.backup = local.backup;
    pl.drain = local.drain;
    if (node.policy)
      for (const auto& info : node.policy->links)
        if (std::find(info.subnets.begin(), info.subnets.end(), pl.subnet) != info.subnets.end()) {
          pl.weight = std::min<uint32_t>(pl.weight, info.weight);
          pl.backup = pl.backup || info.backup;
          pl.drain = pl.drain || info.drain;
        }
    plan.links.push_back(pl);
  }
  if (plan.links.empty() || plan.ml_addresses.empty()) return std::nullopt;
  sort_canonical(plan.links);
  if (plan.links.size() > ML_MAX_SLOTS) plan.links.resize(ML_MAX_SLOTS);
  return plan;
}

}  // namespace mlink::agent
