#include "linkset/damping.h"

#include <algorithm>

namespace mlink::linkset {

void Damping::prune(uint64_t now_us) {
  while (!downs_.empty() && downs_.front() + kWindowUsec <= now_us) downs_.pop_front();
}

void Damping::on_down(uint64_t now_us) {
  prune(now_us);
  downs_.push_back(now_us);
}

uint64_t Damping::hold_down_us(uint64_t now_us) {
  prune(now_us);
  if (downs_.empty()) return 0;
  size_t shift = std::min<size_t>(downs_.size() - 1, 16);
  return std::min(kBaseUsec << shift, kMaxUsec);
}

bool Damping::usable(uint64_t now_us) {
  return now_us >= up_since_ + hold_down_us(now_us);
}

}  // namespace mlink::linkset
