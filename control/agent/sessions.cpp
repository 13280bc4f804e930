#include "agent/sessions.h"

#include <fmt/format.h>

#include <cstring>
#include <functional>
#include <string>

#include "common/log.h"

namespace mlink::agent {

SessionKey session_key(const PeerKey& peer, const PeerLink& link) {
  return {peer, link.link, link.nh4 ? *link.nh4 : *link.nh6};
}

size_t SessionKeyHash::operator()(const SessionKey& k) const {
  size_t h = std::hash<std::string>{}(k.peer.id);
  auto mix = [&h](uint64_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
  mix(static_cast<uint64_t>(k.peer.kind));
  mix(k.link);
  uint64_t w[2];
  std::memcpy(w, k.remote.bytes.data(), sizeof(w));
  mix(w[0]);
  mix(w[1]);
  mix(static_cast<uint64_t>(k.remote.family));
  return h;
}

SessionTable::SessionTable(SessionDriver* driver, Clock now)
    : driver_(driver), now_(std::move(now)) {}

void SessionTable::sync(const std::map<SessionKey, SessionTarget>& want) {
  if (!driver_) return;
  for (auto it = ids_.begin(); it != ids_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    driver_->remove(it->second);
    keys_.erase(it->second);
    damping_.erase(it->first);
    changes_.erase(it->first);
    it = ids_.erase(it);
  }
  for (const auto& [key, target] : want) {
    if (ids_.count(key)) continue;
    auto id = driver_->add(target);
    if (!id) {
      log::error("BFD {}: {}", target.name, id.error().message);
      continue;
    }
    ids_[key] = *id;
    keys_[*id] = key;
  }
}

std::optional<SessionKey> SessionTable::key_of(SessionDriver::Id id) const {
  auto it = keys_.find(id);
  if (it == keys_.end()) return std::nullopt;
  return it->second;
}

std::optional<SessionInfo> SessionTable::info(const SessionKey& key) const {
  auto it = ids_.find(key);
  if (!driver_ || it == ids_.end()) return std::nullopt;
  return driver_->info(it->second);
}

std::string SessionTable::note_health(const SessionKey& key, bool failed) {
  uint64_t now = now_();
  auto& damping = damping_[key];
  if (failed) {
    damping.on_down(now);
    return "";
  }
  damping.on_up(now);
  uint64_t h = damping.hold_down_us(now);
  return h ? fmt::format("; in service after a {} ms hold-down", h / 1000) : "";
}

std::string SessionTable::on_transition(const SessionKey& key, const bfd::Transition& t) {
  changes_[key]++;
  if (t.to != bfd::State::Up && t.from != bfd::State::Up) return "";
  return note_health(key, t.to != bfd::State::Up);
}

// A lossy link leaves the set like a failed one (and counts as a failure for
// the hold-down); clean again, it returns after its hold-down.
std::string SessionTable::on_loss(const SessionKey& key, bool lossy) {
  return note_health(key, lossy);
}

bool SessionTable::proven(const SessionKey& key) {
  if (!driver_) return true;
  auto i = info(key);
  if (!i || !i->up || i->lossy) return false;
  // A repaired link waits out its hold-down; the 100 ms rebalance pass sees it end. A
  // session that never went down has no record (usable).
  auto d = damping_.find(key);
  return d == damping_.end() || d->second.usable(now_());
}

// Asked for every slot on every rewrite: a link that never failed has no record, and
// asking must not make one (4,000 of them at 1,000 peers).
uint64_t SessionTable::hold_down_us(const SessionKey& key) {
  auto it = damping_.find(key);
  return it == damping_.end() ? 0 : it->second.hold_down_us(now_());
}

uint64_t SessionTable::state_changes(const SessionKey& key) const {
  auto it = changes_.find(key);
  return it == changes_.end() ? 0 : it->second;
}

}  // namespace mlink::agent
