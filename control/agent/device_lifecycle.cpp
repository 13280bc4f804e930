// device_lifecycle.cpp - devices that go away under the agent.
//
// Links are configured by device name. A link whose device is deleted, or renamed away from
// that name, leaves service as `mlinkctl link del` would take it out (its peers move off it at
// once: the carrier loss already did); it comes back, with the same policy, when a device of
// that name exists again with an address to reach peers at (checked on its link events and
// on the resync every second, since the addresses come after the device). The BFD sockets,
// the ingress program, group membership and neighbours are all made anew for the new
// ifindex: nothing bound to the old one is reused.
//
// The ML device cannot be followed that way: its ifindex is compiled into the loaded
// programs (ml_ifindex, read-only data). Deleted, it ends the agent after a clean stop (the
// peers are told AdminDown), exit 1: the service manager starts a fresh agent, which makes a
// new ML device (systemd: Restart=on-failure, 1 s).
#include <systemd/sd-event.h>

#include <algorithm>
#include <utility>

#include "agent/agent.h"
#include "common/log.h"

namespace mlink::agent {

void Agent::on_link_events(const std::vector<nl::LinkEvent>& events) {
  if (!controller_) return;
  Links want = links();
  std::vector<std::pair<LocalLink, std::string>> gone;
  bool maybe_back = false;
  for (const auto& ev : events) {
    if (ml_dev_ && ev.ifindex == ml_dev_->ifindex() &&
        (ev.deleted || (!ev.name.empty() && ev.name != cfg_.node.ml_device))) {
      ml_device_lost(ev.deleted ? "deleted" : "renamed to " + ev.name);
      return;
    }
    auto it = std::find_if(want.begin(), want.end(),
                           [&](const auto& kv) { return kv.second.ifindex == ev.ifindex; });
    if (it != want.end() && (ev.deleted || (!ev.name.empty() && ev.name != it->second.device))) {
      gone.emplace_back(it->second, ev.deleted ? "deleted" : "renamed to " + ev.name);
      want.erase(it);
    }
    if (!ev.deleted && absent_links_.count(ev.name)) maybe_back = true;
  }
  if (!gone.empty()) {
    if (auto s = apply_links(want, "device gone"); !s)  // only removals: cannot fail
      log::error("{}", s.error().message);
    for (const auto& [l, why] : gone) {
      log::warn("link {} (ifindex {}): device {}; out of service until a device named {} appears",
                l.device, l.ifindex, why, l.device);
      publish({{"type", "device"}, {"link", l.device}, {"state", "gone"}, {"reason", why}});
      absent_links_[l.device] = {l, false};
    }
  }
  if (maybe_back) recover_links();
}

void Agent::recover_links() {
  if (!controller_) return;
  // Lost events (ENOBUFS) hide a deletion or a rename: the kernel's view decides.
  std::vector<nl::LinkEvent> missed;
  for (const auto& [id, l] : links()) {
    auto info = rtnl_.link_get(l.ifindex);
    if (!info && info.error().err == ENODEV)
      missed.push_back({l.ifindex, "", 0, true});
    else if (info && info->name != l.device)
      missed.push_back({l.ifindex, info->name, info->flags, false});
  }
  if (!missed.empty()) on_link_events(missed);
  for (auto it = absent_links_.begin(); it != absent_links_.end();) {
    const std::string& dev = it->first;
    auto l = read_link(dev);
    bool addressed = l && std::any_of(l->addresses.begin(), l->addresses.end(),
                                      [](const Prefix& p) { return !p.addr.is_link_local_v6(); });
    bool taken = std::any_of(links().begin(), links().end(),
                             [&](const auto& kv) { return kv.second.device == dev; });
    if (taken) {  // back by a reload or `mlinkctl link add` meanwhile
      it = absent_links_.erase(it);
      continue;
    }
    if (!addressed) {
      ++it;
      continue;
    }
    l->weight = it->second.policy.weight;
    l->backup = it->second.policy.backup;
    l->drain = it->second.policy.drain;
    Links want = links();
    want.emplace(next_link_id_, *l);
    // A static peer's next hop must be in the new device's subnets: until its addresses are
    // all there, wait (the next resync looks again).
    auto plans = plan_peers(cfg_, want);
    if (const auto* e = std::get_if<PlanError>(&plans)) {
      if (!std::exchange(it->second.said_waiting, true))
        log::info("link {}: a device of that name is back, waiting for its addresses: {}", dev,
                  e->message);
      ++it;
      continue;
    }
    if (auto s = apply_links(std::move(want), "device back"); !s) {
      log::warn("link {}: device back but not usable yet: {}", dev, s.error().message);
      ++it;
      continue;
    }
    log::info("link {} (ifindex {}): device back, in service again", dev, l->ifindex);
    publish({{"type", "device"}, {"link", dev}, {"state", "back"}, {"ifindex", l->ifindex}});
    it = absent_links_.erase(it);
  }
}

void Agent::ml_device_lost(const std::string& why) {
  if (fatal_) return;
  fatal_ = Error{"ML device " + cfg_.node.ml_device + " gone under the agent (" + why +
                 "): the datapath cannot follow a new device; stopped cleanly so that a fresh "
                 "agent (the service manager's restart) creates it anew"};
  log::warn("ML device {} gone ({}): stopping", cfg_.node.ml_device, why);
  publish({{"type", "device"}, {"link", cfg_.node.ml_device}, {"state", "gone"}, {"reason", why}});
  if (tun_source_) sd_event_source_set_enabled(tun_source_, SD_EVENT_OFF);  // it polls ready
  if (loop_) sd_event_exit(loop_, 1);
}

}  // namespace mlink::agent
