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

void ReplayGuard::touch(std::map<Key, Window, std::less<>>::iterator it) {
  by_use_.erase(it->second.used);
  it->second.used = ++tick_;
  by_use_.emplace(it->second.used, it->first);
}

bool ReplayGuard::accept(std::string_view node_id, KeyId key_id, uint64_t seq) {
  auto key = std::pair(std::string(node_id), key_id);
  auto it = state_.find(key);
  if (it == state_.end()) {
    if (state_.size() >= capacity_) {  // make room: the least recently used goes
      auto oldest = by_use_.begin();
      state_.erase(oldest->second);
      by_use_.erase(oldest);
      evicted_++;
    }
    it = state_.emplace(std::move(key), Window{seq, 1, 0}).first;
    touch(it);
    return true;
  }
  Window& w = it->second;
  if (seq > w.highest) {
    uint64_t shift = seq - w.highest;
    w.seen = shift >= kWindow ? 1 : (w.seen << shift) | 1;
    w.highest = seq;
    touch(it);
    return true;
  }
  uint64_t behind = w.highest - seq;
  if (behind >= kWindow) return false;
  uint64_t bit = uint64_t{1} << behind;
  if (w.seen & bit) return false;
  w.seen |= bit;
  touch(it);
  return true;
}

void ReplayGuard::forget(std::string_view node_id) {
  for (auto it = state_.lower_bound(std::pair(std::string(node_id), KeyId{}));
       it != state_.end() && it->first.first == node_id;) {
    by_use_.erase(it->second.used);
    it = state_.erase(it);
  }
}

}  // namespace mlink::topo
