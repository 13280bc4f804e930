#include "proto/topo/replay.h"

#include <algorithm>

namespace mlink::topo {

uint64_t Sequencer::next(uint32_t now_s) {
  if (counter_ > UINT32_MAX) {
    epoch_ = std::max(epoch_ + 1, now_s);
    counter_ = 0;
  }
  return uint64_t{epoch_} << 32 | counter_++;
}

void ReplayGuard::touch(State::iterator it, uint64_t now_us) {
  by_use_.erase(it->second.used);
  it->second.used = ++tick_;
  it->second.used_us = now_us;
  by_use_.emplace(it->second.used, it->first);
}

ReplayGuard::State::iterator ReplayGuard::erase(State::iterator it) {
  by_use_.erase(it->second.used);
  return state_.erase(it);
}

ReplayGuard::Verdict ReplayGuard::judge(std::string_view node_id, KeyId key_id, uint64_t seq,
                                        uint64_t now_us) {
  auto key = std::pair(std::string(node_id), key_id);
  auto it = state_.find(key);
  if (it == state_.end()) {
    if (state_.size() >= capacity_) {  // make room: the least recently used goes
      erase(state_.find(by_use_.begin()->second));
      evicted_++;
    }
    it = state_.emplace(std::move(key), Window{seq, 1, 0, 0}).first;
    touch(it, now_us);
    return Verdict::Fresh;
  }
  Window& w = it->second;
  if (seq > w.highest) {
    uint64_t shift = seq - w.highest;
    w.seen = shift >= kWindow ? 1 : (w.seen << shift) | 1;
    w.highest = seq;
    touch(it, now_us);
    return Verdict::Fresh;
  }
  uint64_t behind = w.highest - seq;
  if (behind >= kWindow) return Verdict::Stale;
  uint64_t bit = uint64_t{1} << behind;
  if (w.seen & bit) return Verdict::Replay;
  w.seen |= bit;
  touch(it, now_us);
  return Verdict::Fresh;
}

void ReplayGuard::forget(std::string_view node_id) {
  for (auto it = state_.lower_bound(std::pair(std::string(node_id), KeyId{}));
       it != state_.end() && it->first.first == node_id; forgotten_++)
    it = erase(it);
}

void ReplayGuard::forget_key(KeyId key_id) {
  for (auto it = state_.begin(); it != state_.end();)
    if (it->first.second == key_id) {
      it = erase(it);
      forgotten_++;
    } else {
      ++it;
    }
}

// by_use_ is in the order of acceptance, so the idle ones are at its front.
size_t ReplayGuard::expire_idle(uint64_t now_us, uint64_t idle_us) {
  size_t n = 0;
  while (!by_use_.empty()) {
    auto it = state_.find(by_use_.begin()->second);
    if (it->second.used_us + idle_us > now_us) break;
    erase(it);
    n++;
  }
  forgotten_ += n;
  return n;
}

}  // namespace mlink::topo
