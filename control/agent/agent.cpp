#include "agent/agent.h"

#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <set>

#include "common/clock.h"
#include "common/log.h"
#include "linkset/buckets.h"
#include "proto/bfd/codec.h"

#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000  // <linux/if.h>, which clashes with <net/if.h>
#endif

namespace mlink::agent {
namespace {

constexpr uint64_t kResyncUsec = 1000000;    // safety net for missed netlink events
constexpr uint64_t kRebalanceUsec = 100000;  // look at bucket activity this often
constexpr uint64_t kTimerAccuracyUsec = 1000;
constexpr const char* kRunDir = "/run/mlink";  // state a restarted agent resumes from

unsigned usable_slots(const ml_peer& v) {
  unsigned n = 0;
  for (unsigned s = 0; s < v.nslots && s < ML_MAX_SLOTS; s++) n += v.slots[s].state == ML_SLOT_UP;
  return n;
}

std::string pin_dir(const config::Config& cfg) {
  return cfg.node.bpffs + "/mlink/" + cfg.node.id;
}

uint64_t now_usec(sd_event* loop) {
  uint64_t t = 0;
  sd_event_now(loop, CLOCK_MONOTONIC, &t);
  return t;
}

// sd-event timers fire once: set the next expiry and enable them again.
int rearm(sd_event_source* src, uint64_t period_usec) {
  int r = sd_event_source_set_time(src, now_usec(sd_event_source_get_event(src)) + period_usec);
  if (r >= 0) r = sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
  if (r < 0) log::error("re-arm timer: {}", strerror(-r));
  return r;
}

}  // namespace

std::string Agent::config_error(int line, const std::string& key, const std::string& msg) const {
  config::ConfigError e{cfg_.path, line, 0, key, msg};
  return e.str();
}

Agent::Agent(config::Config cfg, nl::Rtnl rtnl)
    : cfg_(std::move(cfg)),
      rtnl_(std::move(rtnl)),
      control_path_(std::string(kRunDir) + "/" + cfg_.node.id + ".sock"),
      started_us_(monotonic_us()) {}

Result<std::unique_ptr<Agent>> Agent::prepare(config::Config cfg) {
  auto rtnl = nl::Rtnl::open();
  if (!rtnl) return rtnl.error();
  std::unique_ptr<Agent> a(new Agent(std::move(cfg), std::move(*rtnl)));
  if (if_nametoindex(a->cfg_.node.ml_device.c_str()) != 0) {
    // A tun with this node's pins was left by an agent that died: adopt it
    // (and the datapath on it, which kept forwarding). Anything else is not ours.
    std::string pins = pin_dir(a->cfg_) + "/ml_peers";
    if (!nl::TunDevice::is_tun(a->cfg_.node.ml_device) || access(pins.c_str(), F_OK) != 0)
      return Error{a->config_error(a->cfg_.node.line, "node.ml_device",
                                   "device " + a->cfg_.node.ml_device + " already exists")};
    a->adopting_ = true;
  }
  if (auto s = a->read_links(); !s) return s.error();
  auto plans = plan_peers(a->cfg_, a->links_);
  if (auto* e = std::get_if<PlanError>(&plans))
    return Error{a->config_error(e->line, e->key, e->message)};
  a->static_plans_ = std::get<std::vector<PeerPlan>>(std::move(plans));
  return a;
}

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

discovery::LocalLink Agent::discovery_link(const LocalLink& l) const {
  discovery::LocalLink dl{l.device, l.ifindex, l.addresses, static_cast<uint8_t>(l.weight),
                          l.backup, l.drain,   {}};
  for (const auto& peer : cfg_.peers)  // static peers hear our hellos by unicast too
    for (const auto& via : peer.via)
      if (via.device == l.device)
        dl.unicast.insert(dl.unicast.end(), via.address.begin(), via.address.end());
  return dl;
}

// ARP from a link must not carry the ML address as sender: a strict
// rp_filter peer would drop it (findings, gotcha 3). In loose mode the
// links' rp_filter must be loose, since ML traffic arrives on them.
Status Agent::set_link_sysctls(size_t id, const LocalLink& l) {
  std::vector<std::pair<std::string, std::string>> want{
      {"net/ipv4/conf/" + l.device + "/arp_announce", "2"}};
  if (cfg_.node.rx_mode == config::RxMode::Loose)
    want.emplace_back("net/ipv4/conf/" + l.device + "/rp_filter", "2");
  std::vector<SysctlGuard> guards;
  for (const auto& [path, value] : want) {
    auto g = SysctlGuard::set(path, value);
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
  for (const auto& [id, l] : links_) {
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
  std::vector<size_t> added;
  auto take_down = [&](size_t id, const LocalLink& l) {
    if (redirect) dp_->detach_ingress(l.ifindex);
    link_sysctls_.erase(id);
    if (discovery_) discovery_->remove_link(id);
  };
  for (const auto& [id, l] : want) {
    if (links_.count(id)) continue;
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
  for (const auto& [id, l] : links_)
    if (!want.count(id)) gone.emplace(id, l);
  for (const auto& [id, l] : want) {
    auto old = links_.find(id);
    if (old == links_.end() || !discovery_) continue;
    auto a = discovery_link(old->second), b = discovery_link(l);
    if (a.weight != b.weight || a.backup != b.backup || a.drain != b.drain ||
        a.unicast != b.unicast)
      (void)discovery_->set_link(id, std::move(b));  // same device: nothing to join
  }
  links_ = std::move(want);
  if (!links_.empty()) next_link_id_ = std::max(next_link_id_, links_.rbegin()->first + 1);
  auto plans = plan_peers(cfg_, links_);
  if (auto* e = std::get_if<PlanError>(&plans))  // callers check first; cannot happen
    log::error("{}", config_error(e->line, e->key, e->message));
  else
    static_plans_ = std::get<std::vector<PeerPlan>>(std::move(plans));
  for (size_t id : added) {
    const auto& l = links_.at(id);
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

Agent::~Agent() {
  for (const auto& [n, state] : nud_)
    if (auto s = rtnl_.neigh_del(n.ifindex, n.addr); !s) log::debug("{}", s.error().message);
  log_protocol_counters();
  exporter_.reset();                         // its HTTP threads end here
  ctl_.reset();                              // clients see the socket close; the file goes
  discovery_.reset();                        // event sources belong to loop_, unreffed below
  if (liveness_) liveness_->forget_state();  // a clean stop: nothing to resume
  liveness_.reset();
  events_.reset();
  dp_.reset();                                    // detach programs, unpin maps
  ml_dev_.reset();                                // the tun goes, with its addresses and routes
  while (!sysctls_.empty()) sysctls_.pop_back();  // restore in reverse order
  if (loop_) sd_event_unref(loop_);
  if (tun_discarded_)
    log::info("discarded {} packets the stack sent through {} to no peer (e.g. IPv6 MLD)",
              tun_discarded_, cfg_.node.ml_device);
  log::info("removed everything this agent created");
}

Status Agent::apply() {
  if (auto s = apply_sysctls(); !s) return s;
  if (auto s = create_ml_device(); !s) return s;
  if (auto s = load_datapath(); !s) return s;
  auto ev = nl::EventSocket::open();  // before the neighbours, so no change is missed
  if (!ev) return ev.error();
  events_.emplace(std::move(*ev));
  if (auto s = start_liveness(); !s) return s;
  sync_peers("start");
  if (auto s = start_discovery(); !s) return s;
  if (static_plans_.empty() && !discovery_)
    log::warn("no [[peer]] and no [discovery]: this node reaches nobody");
  return {};
}

Status Agent::start_liveness() {
  if (!cfg_.bfd.enabled) return {};
  std::error_code ec;
  std::filesystem::create_directories(kRunDir, ec);
  chmod(kRunDir, 0700);
  Liveness::Options o{cfg_.bfd, cfg_.node.rx_mode == config::RxMode::Redirect,
                      ec ? std::string() : std::string(kRunDir) + "/" + cfg_.node.id + ".bfd.json"};
  if (!adopting_ && !o.state_path.empty())
    std::remove(o.state_path.c_str());  // sessions of an agent whose datapath is gone
  liveness_ = Liveness::create(
      std::move(o), [this](Liveness::Id t, const bfd::Transition& tr) { on_liveness(t, tr); },
      [this](Liveness::Id t, bool lossy, unsigned lost) { on_loss(t, lossy, lost); });
  log::info(
      "BFD {} ms x {}, {}", cfg_.bfd.interval_ms, cfg_.bfd.multiplier,
      cfg_.bfd.keys.empty() ? "unauthenticated (allow_unauthenticated)" : "Meticulous Keyed SHA1");
  return {};
}

Status Agent::start_discovery() {
  if (!cfg_.discovery.enabled) return {};
  discovery::Options o{cfg_.discovery, cfg_.node.id, cfg_.node.ml_address, {}};
  for (const auto& [id, l] : links_) o.links.emplace(id, discovery_link(l));
  auto d = discovery::Discovery::create(std::move(o), [this] { sync_peers("discovery"); });
  if (!d) return d.error();
  discovery_ = std::move(*d);
  return {};
}

// What should exist now: every static peer, and every discovered node that
// shares a link with us and claims no ML address someone else has.
std::map<std::string, PeerPlan> Agent::wanted_peers() const {
  std::map<std::string, PeerPlan> want;
  std::set<IpAddr> claimed;
  for (const auto& p : cfg_.node.ml_address) claimed.insert(p.addr);
  for (const auto& p : static_plans_) {
    want.emplace(p.key, p);
    claimed.insert(p.ml_addresses.begin(), p.ml_addresses.end());
  }
  if (!discovery_) return want;
  for (const auto& [id, node] : discovery_->table().nodes()) {
    auto plan = plan_discovered(node, links_, cfg_.node.hash);
    if (!plan) continue;
    bool clash = std::any_of(plan->ml_addresses.begin(), plan->ml_addresses.end(),
                             [&](const IpAddr& a) { return claimed.count(a) > 0; });
    if (clash) {
      log::debug("discovery: node {} claims an ML address already in use; ignored", id);
      continue;
    }
    claimed.insert(plan->ml_addresses.begin(), plan->ml_addresses.end());
    want.emplace(plan->key, std::move(*plan));
  }
  return want;
}

void Agent::drop_peer(const PeerPlan& plan) {
  for (const auto& a : plan.ml_addresses) {
    if (written_.count(a))
      if (auto s = dp_->del_peer(a); !s) log::warn("{}", s.error().message);
    written_.erase(a);
    overrides_.erase(a);
  }
}

void Agent::sync_peers(const char* why) {
  auto want = wanted_peers();
  for (auto it = peers_.begin(); it != peers_.end();) {
    auto w = want.find(it->first);
    if (w == want.end()) {
      log::info("peer {} ({}): gone ({})", it->second.ml_addresses.front().str(), it->first, why);
      publish({{"type", "peer"},
               {"peer", it->second.ml_addresses.front().str()},
               {"key", it->first},
               {"state", "gone"},
               {"reason", why}});
      drop_peer(it->second);
      bucket_seen_.erase(it->second.peer_id);
      link_counters_.forget(it->second.peer_id);
      free_ids_.push_back(it->second.peer_id);
      it = peers_.erase(it);
      continue;
    }
    const PeerPlan& old = it->second;
    w->second.peer_id = old.peer_id;
    bool same_links = old.links.size() == w->second.links.size() &&
                      std::equal(old.links.begin(), old.links.end(), w->second.links.begin(),
                                 [](const PeerLink& a, const PeerLink& b) {
                                   return a.link == b.link && a.nh4 == b.nh4 && a.nh6 == b.nh6 &&
                                          a.weight == b.weight && a.backup == b.backup &&
                                          a.drain == b.drain;
                                 });
    if (old.ml_addresses != w->second.ml_addresses) {
      drop_peer(old);
    } else if (!same_links) {
      for (const auto& a : old.ml_addresses) overrides_.erase(a);  // slots renumbered
    }
    ++it;
  }
  for (auto& [key, plan] : want) {
    if (peers_.count(key)) {
      peers_[key] = plan;
      continue;
    }
    if (free_ids_.empty() && next_id_ >= ML_MAX_PEERS) {
      log::warn("peer {}: no free peer id (at most {} peers)", key, ML_MAX_PEERS);
      continue;
    }
    if (!free_ids_.empty()) {
      plan.peer_id = free_ids_.back();
      free_ids_.pop_back();
    } else {
      plan.peer_id = next_id_++;
    }
    if (auto st = dp_->peer_stats(plan.peer_id))  // counters of an earlier peer with this id
      std::copy(std::begin(st->bucket_packets), std::end(st->bucket_packets),
                bucket_seen_[plan.peer_id].begin());
    std::string links;
    for (const auto& pl : plan.links) links += " " + links_.at(pl.link).device;
    log::info("peer {} ({}): links{} ({})", plan.ml_addresses.front().str(), key, links, why);
    publish({{"type", "peer"},
             {"peer", plan.ml_addresses.front().str()},
             {"key", key},
             {"state", "new"},
             {"reason", why}});
    peers_.emplace(key, plan);
  }
  sync_neighbours();
  sync_targets();
  track_slot_owners();
  refresh_all_peers(why);
}

linkset::SlotCounters Agent::slot_counters(const ml_peer_stats& st) {
  linkset::SlotCounters c{};
  std::copy(std::begin(st.slots), std::end(st.slots), c.begin());
  return c;
}

// Slots follow the links' canonical order: when a peer's links change, the
// counters of the slots that change hands are settled to their old links.
void Agent::track_slot_owners() {
  for (const auto& [key, plan] : peers_) {
    std::vector<size_t> owners;
    for (const auto& pl : plan.links) owners.push_back(pl.link);
    if (link_counters_.same(plan.peer_id, owners)) continue;
    auto st = dp_->peer_stats(plan.peer_id);
    link_counters_.assign(plan.peer_id, owners, st ? slot_counters(*st) : linkset::SlotCounters{});
  }
}

// Managed entries: the kernel resolves the next hop now and keeps it
// resolved, so no packet ever queues behind an INCOMPLETE neighbour
// (findings, gotcha 2). A slot is used only while its entry is usable.
void Agent::sync_neighbours() {
  std::set<NeighKey> want;
  for (const auto& [key, plan] : peers_)
    for (const auto& pl : plan.links)
      for (const auto& nh : {pl.nh4, pl.nh6})
        if (nh) want.insert({links_.at(pl.link).ifindex, *nh});
  for (auto it = nud_.begin(); it != nud_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    if (auto s = rtnl_.neigh_del(it->first.ifindex, it->first.addr); !s)
      log::debug("{}", s.error().message);
    it = nud_.erase(it);
  }
  for (const auto& key : want) {
    if (nud_.count(key)) continue;
    if (auto s = rtnl_.neigh_add_managed(key.ifindex, key.addr); !s) {
      log::warn("{}", s.error().message);
      continue;
    }
    auto n = rtnl_.neigh_get(key.ifindex, key.addr);
    nud_[key] = n && *n ? (*n)->state : 0;
  }
}

// One BFD session per (peer, link), over the link's IPv4 next hop when there
// is one (both ends pick alike), else IPv6.
void Agent::sync_targets() {
  if (!liveness_) return;
  std::map<TargetKey, Liveness::Target> want;
  for (const auto& [key, plan] : peers_)
    for (const auto& pl : plan.links) {
      const IpAddr& remote = pl.nh4 ? *pl.nh4 : *pl.nh6;
      const auto& link = links_.at(pl.link);
      auto local = std::find_if(link.addresses.begin(), link.addresses.end(),
                                [&](const Prefix& p) { return p.contains(remote); });
      if (local == link.addresses.end()) continue;  // plans only take next hops on our subnets
      want.emplace(TargetKey{key, pl.link, remote},
                   Liveness::Target{link.device, local->addr, remote,
                                    plan.ml_addresses.front().str() + " via " + link.device});
    }
  for (auto it = targets_.begin(); it != targets_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    liveness_->remove(it->second);
    target_key_.erase(it->second);
    damping_.erase(it->first);
    state_changes_.erase(it->first);
    it = targets_.erase(it);
  }
  for (const auto& [key, target] : want) {
    if (targets_.count(key)) continue;
    auto id = liveness_->add(target);
    if (!id) {
      log::error("BFD {}: {}", target.name, id.error().message);
      continue;
    }
    targets_[key] = *id;
    target_key_[*id] = key;
  }
}

// A session's link went out of service (failed: true) or came back: the
// hold-down learns of it; returns " in service after ..." for the log when a
// hold-down now runs.
std::string Agent::note_health(const TargetKey& key, bool failed) {
  uint64_t now = monotonic_us();
  auto& damping = damping_[key];
  if (failed) {
    damping.on_down(now);
    return "";
  }
  damping.on_up(now);
  uint64_t h = damping.hold_down_us(now);
  return h ? fmt::format("; in service after a {} ms hold-down", h / 1000) : "";
}

void Agent::on_liveness(Liveness::Id target, const bfd::Transition& t) {
  auto key = target_key_.find(target);
  if (key == target_key_.end()) return;
  auto peer = peers_.find(key->second.peer);
  if (peer == peers_.end()) return;
  state_changes_[key->second]++;
  std::string hold;
  if (t.to == bfd::State::Up || t.from == bfd::State::Up)
    hold = note_health(key->second, t.to != bfd::State::Up);
  std::string addr = peer->second.ml_addresses.front().str();
  const std::string& dev = links_.at(key->second.link).device;
  log::info("peer {} link {}: BFD {} -> {} ({}){}", addr, dev, bfd::to_string(t.from),
            bfd::to_string(t.to), bfd::to_string(t.diag), hold);
  publish({{"type", "session"},
           {"peer", addr},
           {"link", dev},
           {"from", bfd::to_string(t.from)},
           {"to", bfd::to_string(t.to)},
           {"diag", bfd::to_string(t.diag)}});
  refresh_peer(peer->second, "bfd");
}

// A lossy link leaves the set like a failed one (and counts as a failure for
// the hold-down); clean again, it returns after its hold-down.
void Agent::on_loss(Liveness::Id target, bool lossy, unsigned lost) {
  auto key = target_key_.find(target);
  if (key == target_key_.end()) return;
  auto peer = peers_.find(key->second.peer);
  if (peer == peers_.end()) return;
  std::string hold = note_health(key->second, lossy);
  std::string addr = peer->second.ml_addresses.front().str();
  const std::string& dev = links_.at(key->second.link).device;
  log::info("peer {} link {}: {} ({} of the last {} echoes lost){}", addr, dev,
            lossy ? "lossy, out of the link set" : "clean again", lost, bfd::EchoLoss::kWindow,
            hold);
  publish({{"type", "loss"},
           {"peer", addr},
           {"link", dev},
           {"lossy", lossy},
           {"echo_lost", lost},
           {"window", bfd::EchoLoss::kWindow}});
  refresh_peer(peer->second, "loss");
}

bool Agent::proven(const PeerPlan& plan, size_t slot) const {
  if (!liveness_) return true;  // BFD disabled: carrier and neighbour decide alone
  const auto& pl = plan.links[slot];
  TargetKey key{plan.key, pl.link, pl.nh4 ? *pl.nh4 : *pl.nh6};
  auto it = targets_.find(key);
  // A repaired link waits out its hold-down; the 100 ms rebalance pass sees it end.
  return it != targets_.end() && liveness_->up(it->second) && !liveness_->lossy(it->second) &&
         damping_[key].usable(monotonic_us());
}

// Also per link: set_link_sysctls().
Status Agent::apply_sysctls() {
  auto g = SysctlGuard::set("net/ipv4/conf/all/arp_announce", "2");
  if (!g) return g.error();
  sysctls_.push_back(std::move(*g));
  for (const auto& [id, l] : links_)
    if (auto s = set_link_sysctls(id, l); !s) return s;
  return {};
}

Status Agent::create_ml_device() {
  auto dev = adopting_ ? nl::TunDevice::adopt(cfg_.node.ml_device)
                       : nl::TunDevice::create(cfg_.node.ml_device);
  if (!dev) return dev.error();
  ml_dev_.emplace(std::move(*dev));
  int idx = ml_dev_->ifindex();
  fit_ml_mtu();
  if (auto s = rtnl_.link_set_up(idx, true); !s) return s;
  for (const auto& p : cfg_.node.ml_address)
    if (auto s = rtnl_.addr_add(idx, p); !s && !(adopting_ && s.error().err == EEXIST)) return s;
  log::info("{} {} (tun, ifindex {})", adopting_ ? "adopted" : "created", cfg_.node.ml_device, idx);
  return {};
}

Status Agent::load_datapath() {
  if (auto s = datapath::ensure_bpffs(cfg_.node.bpffs); !s) return s;
  auto dp = datapath::BpfDatapath::load({ml_dev_->ifindex(), pin_dir(cfg_), adopting_});
  if (!dp) return dp.error();
  dp_ = std::move(*dp);
  if (adopting_) {
    auto addrs = dp_->peer_addresses();
    if (!addrs) return addrs.error();
    for (const auto& a : *addrs)
      if (auto v = dp_->get_peer(a)) adopted_[a] = *v;
    log::info(
        "adopted the datapath of an agent that died: {} peer entries keep forwarding "
        "until relearned (at most {} s)",
        adopted_.size(), kAdoptGraceUsec / 1000000);
  }
  if (auto s = dp_->attach_egress(ml_dev_->ifindex()); !s) return s;
  if (cfg_.node.rx_mode == config::RxMode::Redirect)
    for (const auto& [id, l] : links_)
      if (auto s = dp_->attach_ingress(l.ifindex); !s) return s;
  for (const auto& p : cfg_.node.ml_address)
    if (auto s = dp_->add_local(p.addr); !s) return s;
  log::info("datapath loaded, maps pinned in {}, rx_mode {}", pin_dir(cfg_),
            config::to_string(cfg_.node.rx_mode));
  return {};
}

bool Agent::link_up(size_t link) const {
  unsigned f = links_.at(link).flags;
  return (f & IFF_UP) && (f & IFF_LOWER_UP);
}

bool Agent::neigh_ok(int ifindex, const IpAddr& nh) const {
  auto it = nud_.find({ifindex, nh});
  return it != nud_.end() && nl::neigh_usable(it->second);
}

std::vector<linkset::Member> Agent::members(const PeerPlan& plan, const IpAddr& ml_addr) const {
  std::vector<linkset::Member> out;
  for (size_t s = 0; s < plan.links.size(); s++) {
    const auto& pl = plan.links[s];
    const auto& link = links_.at(pl.link);
    auto nh = next_hop_for(pl, ml_addr);
    // A drained link keeps its session (proven, ready) but gets no buckets.
    bool usable =
        nh && !pl.drain && link_up(pl.link) && neigh_ok(link.ifindex, *nh) && proven(plan, s);
    out.push_back({static_cast<uint8_t>(s), pl.id, pl.weight, pl.backup, usable});
  }
  return out;
}

ml_peer Agent::build_entry(const PeerPlan& plan, const IpAddr& ml_addr) {
  ml_peer v{};
  v.peer_id = plan.peer_id;
  v.hash_policy = plan.hash == config::HashPolicy::Socket ? ML_HASH_SOCKET : ML_HASH_L34;
  v.nslots = static_cast<__u8>(plan.links.size());
  auto m = members(plan, ml_addr);
  for (size_t s = 0; s < plan.links.size(); s++) {
    ml_slot& slot = v.slots[s];
    slot.ifindex = static_cast<__u32>(links_.at(plan.links[s].link).ifindex);
    slot.state = m[s].usable ? ML_SLOT_UP : ML_SLOT_DOWN;
    if (auto nh = next_hop_for(plan.links[s], ml_addr)) {
      slot.nh_family = static_cast<__u8>(nh->family);
      std::memcpy(slot.nh, nh->bytes.data(), nh->size());
    }
  }
  auto table = linkset::apply_overrides(linkset::build(m), m, overrides_[ml_addr]);
  std::copy(table.begin(), table.end(), v.buckets);
  return v;
}

// Which buckets carried packets since the last look decides where active
// buckets go (rebalance.h); the peer's entries are rewritten only on a move.
void Agent::rebalance_all() {
  for (const auto& [key, plan] : peers_) {
    auto st = dp_->peer_stats(plan.peer_id);
    if (!st) continue;
    auto& seen = bucket_seen_[plan.peer_id];
    std::array<uint64_t, ML_BUCKETS> delta{};
    for (size_t b = 0; b < ML_BUCKETS; b++) {
      delta[b] = st->bucket_packets[b] - seen[b];
      seen[b] = st->bucket_packets[b];
    }
    auto busy = linkset::busy_buckets(delta);
    auto idle = linkset::idle_buckets(delta);
    unsigned moved = 0;
    for (const auto& a : plan.ml_addresses) {
      auto m = members(plan, a);
      moved += linkset::rebalance(linkset::build(m), m, busy, idle, overrides_[a]);
    }
    if (moved) log::debug("peer {}: moved {} active buckets", plan.peer_id, moved);
    refresh_peer(plan, "rebalance");
  }
}

void Agent::refresh_peer(const PeerPlan& plan, const char* why) {
  for (const auto& a : plan.ml_addresses) {
    ml_peer v = build_entry(plan, a);
    if (auto ad = adopted_.find(a); ad != adopted_.end()) {
      // Until our sessions are back Up, the inherited entry forwards better
      // than one with links we have not proven yet.
      if (usable_slots(v) < usable_slots(ad->second)) continue;
      adopted_.erase(ad);
    }
    auto it = written_.find(a);
    if (it != written_.end() && std::memcmp(&it->second, &v, sizeof(v)) == 0) continue;
    if (auto s = dp_->set_peer(a, v); !s) {
      log::error("{}", s.error().message);
      continue;
    }
    linkset::BucketTable table;
    std::copy(std::begin(v.buckets), std::end(v.buckets), table.begin());
    auto share = linkset::share(table);
    std::string links;
    for (size_t s = 0; s < plan.links.size(); s++)
      links += fmt::format(" {}={}/{}", links_.at(plan.links[s].link).device,
                           v.slots[s].state == ML_SLOT_UP ? "up" : "down", share[s]);
    bool states_changed = it == written_.end();
    for (size_t s = 0; !states_changed && s < ML_MAX_SLOTS; s++)
      states_changed = it->second.slots[s].state != v.slots[s].state;
    // Link state changes are news; bucket moves by the rebalancer are routine.
    if (states_changed) {
      log::info("peer {}: link/state/buckets{} ({})", a.str(), links, why);
      for (size_t s = 0; s < plan.links.size(); s++) {
        bool up = v.slots[s].state == ML_SLOT_UP;
        if (it != written_.end() && (it->second.slots[s].state == ML_SLOT_UP) == up) continue;
        publish({{"type", "link"},
                 {"peer", a.str()},
                 {"link", links_.at(plan.links[s].link).device},
                 {"state", up ? "up" : "down"},
                 {"buckets", share[s]},
                 {"reason", why}});
      }
    } else
      log::debug("peer {}: link/state/buckets{} ({})", a.str(), links, why);
    written_[a] = v;
  }
}

void Agent::refresh_all_peers(const char* why) {
  for (const auto& [key, p] : peers_) refresh_peer(p, why);
}

void Agent::on_event(const nl::Event& ev) {
  if (const auto* l = std::get_if<nl::LinkEvent>(&ev)) {
    for (auto& [i, link] : links_) {
      if (link.ifindex != l->ifindex) continue;
      bool was_up = link_up(i);
      link.flags = l->deleted ? 0 : l->flags;
      if (was_up && !link_up(i)) carrier_lost_.insert(l->ifindex);
      if (was_up != link_up(i))
        publish({{"type", "device"},
                 {"link", link.device},
                 {"state", link_up(i) ? "up" : "down"},
                 {"admin", (link.flags & IFF_UP) ? "up" : "down"},
                 {"carrier", (link.flags & IFF_LOWER_UP) != 0}});
    }
    return;
  }
  if (const auto* a = std::get_if<nl::Addr6Event>(&ev)) {
    if (!a->deleted && a->scope == RT_SCOPE_LINK && !(a->flags & IFA_F_TENTATIVE))
      link_local_ready_.insert(a->ifindex);
    return;
  }
  const auto& n = std::get<nl::NeighEvent>(ev);
  auto it = nud_.find({n.ifindex, n.addr});
  if (it == nud_.end()) return;
  it->second = n.deleted ? 0 : n.state;
}

// Re-reads what the events tell, in case some were lost, and re-adds a
// managed neighbour that someone deleted (e.g. `ip neigh flush`).
void Agent::resync() {
  for (auto& [id, link] : links_) {
    auto info = rtnl_.link_get(link.ifindex);
    link.flags = info ? info->flags : 0;
  }
  for (auto& [key, state] : nud_) {
    auto n = rtnl_.neigh_get(key.ifindex, key.addr);
    if (n && !*n) {
      if (auto s = rtnl_.neigh_add_managed(key.ifindex, key.addr); !s)
        log::warn("re-add neighbour {}: {}", key.addr.str(), s.error().message);
      n = rtnl_.neigh_get(key.ifindex, key.addr);
    }
    state = n && *n ? (*n)->state : 0;
  }
}

// Until the control socket and metrics exist (issue 5), a stop reports what
// both protocols dropped, by reason.
void Agent::log_protocol_counters() const {
  std::string out;
  if (discovery_) {
    auto c = discovery_->counters();
    for (size_t r = 0; r < c.rejected.size(); r++)
      if (c.rejected[r])
        out += fmt::format(" topo.{}={}", topo::reason_name(static_cast<topo::Reason>(r)),
                           c.rejected[r]);
    if (c.bad_hop_limit) out += fmt::format(" topo.bad_hop_limit={}", c.bad_hop_limit);
    if (c.not_a_link) out += fmt::format(" topo.not_a_link={}", c.not_a_link);
  }
  if (liveness_) {
    auto r = liveness_->rejected();
    for (size_t i = 0; i < r.size(); i++)
      if (r[i])
        out +=
            fmt::format(" bfd.{}={}",
                        i == Liveness::kBadHopLimit ? "bad_hop_limit"
                                                    : bfd::to_string(static_cast<bfd::Reject>(i)),
                        r[i]);
  }
  log::info("protocol packets dropped:{}", out.empty() ? " none" : out);
}

void Agent::drain_tun() {
  char buf[65536];
  while (read(ml_dev_->fd(), buf, sizeof(buf)) > 0) tun_discarded_++;
}

int Agent::on_signal(sd_event_source* s, const signalfd_siginfo* si, void* self) {
  if (si->ssi_signo == SIGHUP) {
    static_cast<Agent*>(self)->reload("SIGHUP");
    return 0;
  }
  log::info("signal {}: stopping", strsignal(static_cast<int>(si->ssi_signo)));
  return sd_event_exit(sd_event_source_get_event(s), 0);
}

int Agent::on_netlink(sd_event_source*, int, uint32_t, void* self) {
  auto* a = static_cast<Agent*>(self);
  auto s = a->events_->drain([a](const nl::Event& ev) { a->on_event(ev); });
  if (!s) {
    log::warn("{}; resyncing", s.error().message);
    a->resync();
  }
  a->refresh_all_peers("netlink event");
  for (int ifindex : a->carrier_lost_) a->renew_neighbours(ifindex, false);
  a->carrier_lost_.clear();
  for (int ifindex : a->link_local_ready_) a->renew_neighbours(ifindex, true);
  a->link_local_ready_.clear();
  return 0;
}

// Replaces the link's managed entries (only its unresolved IPv6 ones when
// unresolved_v6), which frees what they hold and starts resolution anew.
// - Carrier loss: packets sent to the link in the moment before the map update
//   wait on its neighbour entry (the kernel flushes the entry on carrier loss,
//   the next packet makes an INCOMPLETE one) for up to 3 s of failed
//   resolution, and TCP does not retransmit a segment while its clone sits in
//   such a host queue: those streams would stall for 3 s.
// - A link-local address out of DAD: until then the kernel cannot send a
//   neighbour solicitation, so an IPv6 next hop asked for on a link that just
//   came up fails, and the kernel retries a failed managed entry only every
//   5 s. Asking again now resolves it in a round trip.
void Agent::renew_neighbours(int ifindex, bool unresolved_v6) {
  size_t n = 0;
  for (auto& [key, state] : nud_) {
    if (key.ifindex != ifindex) continue;
    if (unresolved_v6 && (key.addr.is_v4() || nl::neigh_usable(state))) continue;
    if (auto s = rtnl_.neigh_del(key.ifindex, key.addr); !s) log::debug("{}", s.error().message);
    if (auto s = rtnl_.neigh_add_managed(key.ifindex, key.addr); !s)
      log::warn("re-add neighbour {}: {}", key.addr.str(), s.error().message);
    auto got = rtnl_.neigh_get(key.ifindex, key.addr);
    state = got && *got ? (*got)->state : 0;
    n++;
  }
  if (n)
    log::debug("ifindex {}: {} neighbour entries renewed ({})", ifindex, n,
               unresolved_v6 ? "link-local address ready" : "carrier lost");
}

int Agent::on_tun(sd_event_source*, int, uint32_t, void* self) {
  static_cast<Agent*>(self)->drain_tun();
  return 0;
}

int Agent::on_resync_timer(sd_event_source* src, uint64_t, void* self) {
  auto* a = static_cast<Agent*>(self);
  a->resync();
  a->refresh_all_peers("resync");
  if (a->liveness_) a->liveness_->checkpoint();
  a->refresh_metrics();
  return rearm(src, kResyncUsec);
}

// Whatever the previous agent wrote and we have not relearned by now is gone.
int Agent::on_adopt_timer(sd_event_source*, uint64_t, void* self) {
  auto* a = static_cast<Agent*>(self);
  for (const auto& [addr, v] : a->adopted_) {
    if (a->written_.count(addr)) continue;
    log::info("peer {}: not relearned since the restart; removed", addr.str());
    if (auto s = a->dp_->del_peer(addr); !s) log::warn("{}", s.error().message);
  }
  a->adopted_.clear();
  a->refresh_all_peers("adoption over");
  return 0;
}

int Agent::on_rebalance_timer(sd_event_source* src, uint64_t, void* self) {
  static_cast<Agent*>(self)->rebalance_all();
  return rearm(src, kRebalanceUsec);
}

Status Agent::add_timer(uint64_t period_usec, int (*handler)(sd_event_source*, uint64_t, void*)) {
  // Accuracy 0 would mean sd-event's default of 250 ms: far too coarse here.
  int r = sd_event_add_time(loop_, nullptr, CLOCK_MONOTONIC, now_usec(loop_) + period_usec,
                            kTimerAccuracyUsec, handler, this);
  if (r < 0) return os_error("add timer", r);
  return {};
}

Status Agent::run() {
  sigset_t mask;  // sd-event needs them blocked; mlinkd blocks them before apply()
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  if (int r = sd_event_new(&loop_); r < 0) return os_error("create event loop", r);
  for (int sig : {SIGTERM, SIGINT, SIGHUP})
    if (int r = sd_event_add_signal(loop_, nullptr, sig, on_signal, this); r < 0)
      return os_error("watch signal", r);
  if (int r = sd_event_add_io(loop_, nullptr, events_->fd(), EPOLLIN, on_netlink, this); r < 0)
    return os_error("watch netlink events", r);
  if (int r = sd_event_add_io(loop_, nullptr, ml_dev_->fd(), EPOLLIN, on_tun, this); r < 0)
    return os_error("watch ML device", r);
  if (auto st = add_timer(kResyncUsec, on_resync_timer); !st) return st;
  if (auto st = add_timer(kRebalanceUsec, on_rebalance_timer); !st) return st;
  if (adopting_)
    if (auto st = add_timer(kAdoptGraceUsec, on_adopt_timer); !st) return st;
  if (liveness_)
    if (auto st = liveness_->attach(loop_); !st) return st;
  if (discovery_)
    if (auto st = discovery_->attach(loop_); !st) return st;
  if (auto st = start_control(); !st) return st;
  if (auto st = start_metrics(); !st) return st;
  sd_notify(0, "READY=1");
  log::info("running: {} peers, {} links", peers_.size(), links_.size());
  int r = sd_event_loop(loop_);
  sd_notify(0, "STOPPING=1");
  if (r < 0) return os_error("event loop", r);
  return {};
}

}  // namespace mlink::agent
