// link_setup.cpp - the agent's links as system state: reading them from the
// kernel, their sysctls, the ingress program, discovery on them, the ML
// device's MTU, and run-time changes (mlinkctl link add/del/set, reload).
#include <algorithm>

#include "agent/agent.h"
#include "common/log.h"

namespace mlink::agent {

Result<LocalLink> Agent::read_link(const std::string& device) {
  auto info = rtnl_.link_get(device);
  if (!info) return Error{"device " + device + ": " + info.error().message};
  auto addrs = rtnl_.addr_dump(info->ifindex);
  if (!addrs) return addrs.error();
  LocalLink ll{device, info->ifindex, {}, info->flags};
  for (const auto& a : *addrs) ll.addresses.push_back(a.prefix);
  return ll;
}

Status Agent::read_links() {
  for (size_t i = 0; i < cfg_.links.size(); i++) {
    const auto& l = cfg_.links[i];
    auto ll = read_link(l.device);
    if (!ll)
      return Error{
          config_error(l.line, "link[" + std::to_string(i) + "].device", ll.error().message)};
    ll->weight = l.weight;
    ll->backup = l.backup;
    links_.emplace(next_link_id_++, std::move(*ll));
  }
  return {};
}

discovery::ProtocolLink Agent::discovery_link(const LocalLink& l) const {
  discovery::ProtocolLink dl{l.device, l.ifindex, l.addresses, static_cast<uint8_t>(l.weight),
                             l.backup, l.drain,   {}};
  for (const auto& peer : cfg_.peers)  // static peers hear our hellos by unicast too
    for (const auto& via : peer.via)
      if (via.device == l.device)
        dl.unicast.insert(dl.unicast.end(), via.address.begin(), via.address.end());
  return dl;
}

// ARP from a link must not carry the ML address as sender: a strict
// rp_filter peer would drop it (docs/FINDINGS.md, "ARP source address"). In
// loose mode the links' rp_filter must be loose, since ML traffic arrives on them.
Status Agent::set_link_sysctls(size_t id, const LocalLink& l) {
  std::vector<std::pair<std::string, std::string>> want{
      {"net/ipv4/conf/" + l.device + "/arp_announce", "2"}};
  if (cfg_.node.rx_mode == config::RxMode::Loose)
    want.emplace_back("net/ipv4/conf/" + l.device + "/rp_filter", "2");
  std::vector<SysctlGuard> guards;
  for (const auto& [path, value] : want) {
    auto g = SysctlGuard::set(path, value, sysctl_store_.get());
    if (!g) return g.error();
    guards.push_back(std::move(*g));
  }
  link_sysctls_[id] = std::move(guards);
  return {};
}

// The ML device's MTU is the smallest of the links': a packet that fits it
// fits whichever link its flow hashes to.
void Agent::fit_ml_mtu() {
  uint32_t mtu = 0;
  for (const auto& [id, l] : links()) {
    auto info = rtnl_.link_get(l.ifindex);
    if (info && (mtu == 0 || info->mtu < mtu)) mtu = info->mtu;
  }
  auto cur = rtnl_.link_get(ml_dev_->ifindex());
  if (!mtu || (cur && cur->mtu == mtu)) return;
  if (auto s = rtnl_.link_set_mtu(ml_dev_->ifindex(), mtu); !s)
    log::warn("{}", s.error().message);
  else
    log::info("{}: mtu {}", cfg_.node.ml_device, mtu);
}

Status Agent::apply_links(Links want, const char* why) {
  const bool redirect = cfg_.node.rx_mode == config::RxMode::Redirect;
  const Links& have = controller_->links();
  std::vector<size_t> added;
  auto take_down = [&](size_t id, const LocalLink& l) {
    if (redirect) dp_->detach_ingress(l.ifindex);
    link_sysctls_.erase(id);
    if (discovery_) discovery_->remove_link(id);
  };
  for (const auto& [id, l] : want) {
    if (have.count(id)) continue;
    Status s = set_link_sysctls(id, l);
    if (s && redirect) s = dp_->attach_ingress(l.ifindex);
    if (s && discovery_) s = discovery_->set_link(id, discovery_link(l));
    if (!s) {
      take_down(id, l);
      for (size_t a : added) take_down(a, want.at(a));
      return Error{"link " + l.device + ": " + s.error().message};
    }
    added.push_back(id);
  }
  Links gone;
  for (const auto& [id, l] : have)
    if (!want.count(id)) gone.emplace(id, l);
  for (const auto& [id, l] : want) {
    auto old = have.find(id);
    if (old == have.end() || !discovery_) continue;
    auto a = discovery_link(old->second), b = discovery_link(l);
    if (a.weight != b.weight || a.backup != b.backup || a.drain != b.drain ||
        a.unicast != b.unicast)
      (void)discovery_->set_link(id, std::move(b));  // same device: nothing to join
  }
  if (!want.empty()) next_link_id_ = std::max(next_link_id_, want.rbegin()->first + 1);
  auto plans = plan_peers(cfg_, want);
  if (auto* e = std::get_if<PlanError>(&plans))  // callers check first; cannot happen
    log::error("{}", config_error(e->line, e->key, e->message));
  else
    controller_->set_static_plans(std::get<std::vector<PeerPlan>>(std::move(plans)));
  controller_->set_links(std::move(want));
  for (size_t id : added) {
    const auto& l = links().at(id);
    log::info("link {} (ifindex {}): added ({})", l.device, l.ifindex, why);
    publish({{"type", "config"}, {"action", "link add"}, {"link", l.device}, {"reason", why}});
  }
  // The peers stop using a link that left before its ingress program goes.
  sync_peers(why);
  for (const auto& [id, l] : gone) {
    take_down(id, l);
    log::info("link {}: removed ({})", l.device, why);
    publish({{"type", "config"}, {"action", "link del"}, {"link", l.device}, {"reason", why}});
  }
  fit_ml_mtu();
  return {};
}

}  // namespace mlink::agent
