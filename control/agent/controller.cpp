#include "agent/controller.h"

#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <algorithm>

#include "bfd/echo_loss.h"
#include "common/clock.h"
#include "common/log.h"
#include "linkset/buckets.h"

#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000  // <linux/if.h>, which clashes with <net/if.h>
#endif

namespace mlink::agent {
namespace {

linkset::SlotCounters slot_counters(const ml_peer_stats& st) {
  linkset::SlotCounters c{};
  std::copy(std::begin(st.slots), std::end(st.slots), c.begin());
  return c;
}

bool slot_up(const ml_peer& v, size_t s) {
  return s < ML_MAX_SLOTS && v.slots[s].state == ML_SLOT_UP;
}

}  // namespace

LinkSetController::LinkSetController(ControllerDeps deps, std::vector<Prefix> own_ml,
                                     Spreading spreading)
    : deps_(std::move(deps)),
      own_ml_(std::move(own_ml)),
      spreading_(spreading),
      neighbours_(deps_.neighbours),
      registry_(deps_.max_peers),
      sessions_(deps_.sessions, deps_.now ? deps_.now : SessionTable::Clock(monotonic_us)),
      entries_(deps_.dp) {}

bool LinkSetController::link_up(size_t link) const {
  auto it = links_.find(link);
  if (it == links_.end()) return false;
  return (it->second.flags & IFF_UP) && (it->second.flags & IFF_LOWER_UP);
}

std::optional<size_t> LinkSetController::link_of(int ifindex) const {
  for (const auto& [id, l] : links_)
    if (l.ifindex == ifindex) return id;
  return std::nullopt;
}

std::vector<PeerPlan> LinkSetController::plan_nodes(
    const std::map<std::string, discovery::Node>& nodes) const {
  std::vector<PeerPlan> out;
  for (const auto& [id, node] : nodes)
    if (auto plan = plan_discovered(node, links_, spreading_)) out.push_back(std::move(*plan));
  return out;
}

void LinkSetController::sync(const std::vector<PeerPlan>& discovered, const char* why) {
  heard_.clear();
  for (const auto& p : discovered) heard_.emplace(p.key.id, p);
  reconcile(why, true);
}

void LinkSetController::on_nodes(const std::map<std::string, discovery::Node>& nodes,
                                 const std::vector<std::string>& changed, const char* why) {
  for (const auto& id : changed) {
    auto n = nodes.find(id);
    std::optional<PeerPlan> plan;
    if (n != nodes.end()) plan = plan_discovered(n->second, links_, spreading_);
    if (plan)
      heard_.insert_or_assign(id, std::move(*plan));
    else
      heard_.erase(id);
  }
  reconcile(why, false);
}

void LinkSetController::reconcile(const char* why, bool rewrite_all) {
  std::vector<PeerPlan> discovered;  // in node id order: who wins an ML address clash
  discovered.reserve(heard_.size());
  for (const auto& [id, p] : heard_) discovered.push_back(p);
  auto want = want_peers(own_ml_, statics_, discovered);
  for (const auto& key : want.clashing)
    log::debug("discovery: {} claims an ML address already in use; ignored", key.str());
  auto diff = registry_.update(std::move(want.peers));
  for (const auto& gone : diff.removed) {
    std::string addr = gone.ml_addresses.front().str();
    log::info("peer {} ({}): gone ({})", addr, gone.key.str(), why);
    deps_.publish({{"type", "peer"},
                   {"peer", addr},
                   {"key", gone.key.str()},
                   {"state", "gone"},
                   {"reason", why}});
    entries_.drop(gone);
    entries_.forget_counting(gone.peer_id);
    link_counters_.forget(gone.peer_id);
  }
  for (const auto& [before, now] : diff.changed) {
    if (before.ml_addresses != now.ml_addresses)
      entries_.drop(before);
    else if (!same_links(before, now))
      entries_.forget_overrides(before);  // slots renumbered
  }
  for (const auto& key : diff.refused)
    log::warn("peer {}: over node.max_peers = {} (kept: static peers, then nodes by id)", key.str(),
              deps_.max_peers);
  for (const auto& plan : diff.added) {
    entries_.start_counting(plan.peer_id);
    std::string names;
    for (const auto& pl : plan.links) names += " " + links_.at(pl.link).device;
    std::string addr = plan.ml_addresses.front().str();
    log::info("peer {} ({}): links{} ({})", addr, plan.key.str(), names, why);
    deps_.publish({{"type", "peer"},
                   {"peer", addr},
                   {"key", plan.key.str()},
                   {"state", "new"},
                   {"reason", why}});
  }
  sync_neighbours();
  sync_sessions();
  track_slot_owners();
  if (rewrite_all) {
    refresh_all(why);
    return;
  }
  for (const auto& plan : diff.added)
    if (const PeerPlan* p = registry_.find(plan.key)) refresh(*p, why);
  for (const auto& [before, now] : diff.changed)
    if (const PeerPlan* p = registry_.find(now.key)) refresh(*p, why);
}

// A NOARP link (an L3 point-to-point link: a tunnel, PPP-like) has no neighbours to resolve:
// the kernel keys an IPv4 neighbour on one by 0.0.0.0 and its entries are NUD_NOARP, usable at
// once. Its usability comes from carrier and BFD alone.
bool LinkSetController::resolves_neighbours(size_t link) const {
  return !(links_.at(link).flags & IFF_NOARP);
}

// Every next hop of every peer on a link that resolves neighbours gets a managed entry.
void LinkSetController::sync_neighbours() {
  std::set<NeighKey> want;
  for (const auto& [key, plan] : registry_.peers())
    for (const auto& pl : plan.links)
      if (resolves_neighbours(pl.link))
        for (const auto& nh : {pl.nh4, pl.nh6})
          if (nh) want.insert({links_.at(pl.link).ifindex, *nh});
  neighbours_.sync(want);
}

void LinkSetController::sync_sessions() {
  if (!sessions_.enabled()) return;
  std::map<SessionKey, SessionTarget> want;
  for (const auto& [key, plan] : registry_.peers())
    for (const auto& pl : plan.links) {
      SessionKey sk = session_key(key, pl);
      const auto& link = links_.at(pl.link);
      auto local = std::find_if(link.addresses.begin(), link.addresses.end(),
                                [&](const Prefix& p) { return p.contains(sk.remote); });
      if (local == link.addresses.end()) continue;  // plans only take next hops on our subnets
      want.emplace(sk, SessionTarget{link.device, local->addr, sk.remote,
                                     plan.ml_addresses.front().str() + " via " + link.device});
    }
  sessions_.sync(want);
}

// Slots follow the links' canonical order: when a peer's links change, the
// counters of the slots that change hands are settled to their old links.
void LinkSetController::track_slot_owners() {
  for (const auto& [key, plan] : registry_.peers()) {
    std::vector<size_t> owners;
    for (const auto& pl : plan.links) owners.push_back(pl.link);
    if (link_counters_.same(plan.peer_id, owners)) continue;
    auto st = deps_.dp.peer_stats(plan.peer_id);
    link_counters_.assign(plan.peer_id, owners, st ? slot_counters(*st) : linkset::SlotCounters{});
  }
}

bool LinkSetController::slot_usable(const PeerPlan& plan, size_t slot, const IpAddr& next_hop) {
  const PeerLink& pl = plan.links[slot];
  return link_up(pl.link) &&
         (!resolves_neighbours(pl.link) ||
          neighbours_.usable({links_.at(pl.link).ifindex, next_hop})) &&
         sessions_.proven(session_key(plan.key, pl));
}

void LinkSetController::refresh(const PeerPlan& plan, const char* why) {
  auto usable = [this](const PeerPlan& p, size_t s, const IpAddr& nh) {
    return slot_usable(p, s, nh);
  };
  auto writes = entries_.refresh(plan, links_, usable);
  entry_writes_ += writes.size();
  if (deferred_) {
    if (!writes.empty()) deferred_->push_back({plan.key, std::move(writes)});
    return;
  }
  report(plan, writes, why);
}

void LinkSetController::refresh_all(const char* why) {
  for (const auto& [key, plan] : registry_.peers()) refresh(plan, why);
}

// Link state changes are news (log, monitor); bucket moves are routine.
void LinkSetController::report(const PeerPlan& plan, const std::vector<EntryWrite>& writes,
                               const char* why) {
  for (const auto& w : writes) {
    if (!w.now) continue;
    const ml_peer& v = *w.now;
    auto share = linkset::share(v);
    std::string text;
    bool states_changed = !w.before;
    for (size_t s = 0; s < plan.links.size(); s++) {
      text += fmt::format(" {}={}/{}", links_.at(plan.links[s].link).device,
                          slot_up(v, s) ? "up" : "down", share[s]);
      states_changed = states_changed || slot_up(*w.before, s) != slot_up(v, s);
    }
    if (!states_changed) {
      log::debug("peer {}: link/state/buckets{} ({})", w.ml_address.str(), text, why);
      continue;
    }
    log::info("peer {}: link/state/buckets{} ({})", w.ml_address.str(), text, why);
    for (size_t s = 0; s < plan.links.size(); s++) {
      if (w.before && slot_up(*w.before, s) == slot_up(v, s)) continue;
      deps_.publish({{"type", "link"},
                     {"peer", w.ml_address.str()},
                     {"link", links_.at(plan.links[s].link).device},
                     {"state", slot_up(v, s) ? "up" : "down"},
                     {"buckets", share[s]},
                     {"reason", why}});
    }
  }
}

void LinkSetController::on_netlink(const nl::Event& ev) {
  if (const auto* l = std::get_if<nl::LinkEvent>(&ev)) {
    for (const auto& [id, link] : links_)
      if (link.ifindex == l->ifindex) set_flags(id, l->deleted ? 0 : l->flags);
    return;
  }
  if (const auto* a = std::get_if<nl::Addr6Event>(&ev)) {
    if (a->scope != RT_SCOPE_LINK) return;
    if (!a->deleted && !(a->flags & IFA_F_TENTATIVE)) {
      link_local_ready_.insert(a->ifindex);
      link_local_known_.insert(a->ifindex);
    } else {
      link_local_known_.erase(a->ifindex);
    }
    return;
  }
  const auto& n = std::get<nl::NeighEvent>(ev);
  if (!neighbours_.on_event(n)) return;
  if (auto id = link_of(n.ifindex)) touched_.insert(*id);
}

// A link's flags as an event or a resync tells them; a change of usability is published, and
// a carrier loss noted for renew_neighbours().
void LinkSetController::set_flags(size_t id, unsigned flags) {
  LocalLink& link = links_.at(id);
  bool was_up = link_up(id);
  link.flags = flags;
  touched_.insert(id);
  if (was_up == link_up(id)) return;
  if (was_up) carrier_lost_.insert(link.ifindex);
  deps_.publish({{"type", "device"},
                 {"link", link.device},
                 {"state", link_up(id) ? "up" : "down"},
                 {"admin", (link.flags & IFF_UP) ? "up" : "down"},
                 {"carrier", (link.flags & IFF_LOWER_UP) != 0}});
}

// Carrier loss: packets sent to the link in the moment before the map update wait on its
// neighbour entry, and TCP does not retransmit a segment whose clone sits there; a
// link-local address out of DAD: an IPv6 next hop asked for before could not be solicited.
// Renewing the entries frees the one and resolves the other at once (docs/FINDINGS.md,
// "Carrier loss and queued packets", "IPv6 next hops before DAD"). After the entries are
// rewritten, so the renewed ones are not used again.
void LinkSetController::renew_neighbours(const char* why) {
  for (int ifindex : carrier_lost_)
    if (size_t n = neighbours_.renew(ifindex, false))
      log::debug("ifindex {}: {} neighbour entries renewed (carrier lost, {})", ifindex, n, why);
  carrier_lost_.clear();
  for (int ifindex : link_local_ready_)
    if (size_t n = neighbours_.renew(ifindex, true))
      log::debug("ifindex {}: {} neighbour entries renewed (link-local address ready, {})", ifindex,
                 n, why);
  link_local_ready_.clear();
}

std::vector<size_t> LinkSetController::after_netlink(const char* why) {
  std::vector<size_t> lost;
  for (int ifindex : carrier_lost_)
    if (auto id = link_of(ifindex)) lost.push_back(*id);
  deferred_.emplace();
  for (const auto& [key, plan] : registry_.peers())
    if (std::any_of(plan.links.begin(), plan.links.end(),
                    [&](const PeerLink& pl) { return touched_.count(pl.link) > 0; }))
      refresh(plan, why);
  touched_.clear();
  return lost;
}

void LinkSetController::after_rewrite(const char* why) {
  if (deferred_) {
    auto held = std::move(*deferred_);
    deferred_.reset();
    for (const auto& d : held)
      if (const PeerPlan* plan = registry_.find(d.peer)) report(*plan, d.writes, why);
  }
  renew_neighbours(why);
}

void LinkSetController::resync(const std::map<size_t, unsigned>& link_flags,
                               const std::set<int>& link_local_ready) {
  for (const auto& [id, link] : links_) {
    auto f = link_flags.find(id);
    set_flags(id, f == link_flags.end() ? 0 : f->second);
  }
  touched_.clear();  // every peer is rewritten below
  for (int ifindex : link_local_ready)
    if (!link_local_known_.count(ifindex)) link_local_ready_.insert(ifindex);
  link_local_known_ = link_local_ready;
  neighbours_.resync();
  refresh_all("resync");
  renew_neighbours("resync");
}

std::optional<LinkSetController::SessionEvent> LinkSetController::session_event(
    SessionDriver::Id id) const {
  auto key = sessions_.key_of(id);
  if (!key) return std::nullopt;
  const PeerPlan* peer = registry_.find(key->peer);
  if (!peer) return std::nullopt;
  return SessionEvent{*key, peer, peer->ml_addresses.front().str(), links_.at(key->link).device};
}

void LinkSetController::on_transition(SessionDriver::Id id, const bfd::Transition& t) {
  auto ev = session_event(id);
  if (!ev) return;
  std::string hold = sessions_.on_transition(ev->key, t);
  log::info("peer {} link {}: BFD {} -> {} ({}){}", ev->addr, ev->device, bfd::to_string(t.from),
            bfd::to_string(t.to), bfd::to_string(t.diag), hold);
  deps_.publish({{"type", "session"},
                 {"peer", ev->addr},
                 {"link", ev->device},
                 {"from", bfd::to_string(t.from)},
                 {"to", bfd::to_string(t.to)},
                 {"diag", bfd::to_string(t.diag)}});
  holding_.insert(ev->key.peer);
  refresh(*ev->peer, "bfd");
}

void LinkSetController::on_loss(SessionDriver::Id id, bool lossy, unsigned lost) {
  auto ev = session_event(id);
  if (!ev) return;
  std::string hold = sessions_.on_loss(ev->key, lossy);
  log::info("peer {} link {}: {} ({} of the last {} echoes lost){}", ev->addr, ev->device,
            lossy ? "lossy, out of the link set" : "clean again", lost, bfd::EchoLoss::kWindow,
            hold);
  deps_.publish({{"type", "loss"},
                 {"peer", ev->addr},
                 {"link", ev->device},
                 {"lossy", lossy},
                 {"echo_lost", lost},
                 {"window", bfd::EchoLoss::kWindow}});
  holding_.insert(ev->key.peer);
  refresh(*ev->peer, "loss");
}

// Also ends hold-downs: a repaired link's hold-down is over at the first
// pass after it. The idle share is bounded so that a pass costs O(active +
// peers / 10), not a read of every peer's counters ten times a second.
void LinkSetController::rebalance() {
  auto usable = [this](const PeerPlan& p, size_t s, const IpAddr& nh) {
    return slot_usable(p, s, nh);
  };
  const auto& peers = registry_.peers();
  std::set<PeerKey> look;
  for (const auto& k : active_)
    if (peers.count(k)) look.insert(k);
  size_t share = peers.size() / 10 + 1;
  auto it = rebalance_cursor_ ? peers.upper_bound(*rebalance_cursor_) : peers.begin();
  for (size_t n = 0; n < std::min(share, peers.size()); n++, ++it) {
    if (it == peers.end()) it = peers.begin();
    look.insert(it->first);
    rebalance_cursor_ = it->first;
  }
  active_.clear();
  for (const auto& key : look) {
    const PeerPlan& plan = peers.at(key);
    auto r = entries_.rebalance(plan, usable);
    if (r.active) active_.insert(key);
    if (r.moved) log::debug("peer {}: moved {} active buckets", plan.peer_id, r.moved);
    if (r.changed || holding_.count(key)) refresh(plan, "rebalance");
  }
  for (auto h = holding_.begin(); h != holding_.end();) {
    const PeerPlan* plan = registry_.find(*h);
    bool held =
        plan && std::any_of(plan->links.begin(), plan->links.end(), [&](const PeerLink& pl) {
          return sessions_.hold_down_us(session_key(*h, pl)) > 0;
        });
    if (plan && !look.count(*h)) refresh(*plan, "rebalance");
    h = held ? std::next(h) : holding_.erase(h);
  }
}

void LinkSetController::end_adoption() {
  auto known = [this](const IpAddr& a) { return registry_.owner_of(a) != nullptr; };
  for (const auto& w : entries_.end_adoption(known))
    log::info("peer {}: not relearned since the restart; removed", w.ml_address.str());
  refresh_all("adoption over");
}

std::vector<PeerStatus> LinkSetController::status() {
  std::vector<PeerStatus> out;
  for (const auto& [key, plan] : registry_.peers()) {
    PeerStatus ps{&plan, {}, {}};
    auto stats = deps_.dp.peer_stats(plan.peer_id);
    for (const auto& a : plan.ml_addresses) {
      const ml_peer* w = entries_.written(a);
      auto share = w ? linkset::share(*w) : std::array<unsigned, ML_MAX_SLOTS>{};
      EntryStatus es{a, {}};
      for (size_t s = 0; s < plan.links.size(); s++)
        es.slots.push_back({links_.at(plan.links[s].link).device, next_hop_for(plan.links[s], a),
                            w && slot_up(*w, s), share[s]});
      ps.entries.push_back(std::move(es));
    }
    for (size_t s = 0; s < plan.links.size(); s++) {
      const auto& pl = plan.links[s];
      PeerLinkStatus ls;
      ls.plan = &pl;
      ls.device = links_.at(pl.link).device;
      ls.carrier = link_up(pl.link);
      ls.up = ps.entries.front().slots[s].up;
      ls.buckets = ps.entries.front().slots[s].buckets;
      if (stats) ls.counted = link_counters_.total(plan.peer_id, s, slot_counters(*stats));
      SessionKey sk = session_key(key, pl);
      ls.session = sessions_.info(sk);
      if (ls.session) {
        ls.hold_down_ms = sessions_.hold_down_us(sk) / 1000;
        ls.state_changes = sessions_.state_changes(sk);
      }
      ps.links.push_back(std::move(ls));
    }
    out.push_back(std::move(ps));
  }
  return out;
}

}  // namespace mlink::agent
