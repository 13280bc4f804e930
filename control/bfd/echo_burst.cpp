#include "bfd/echo_burst.h"

#include <algorithm>

namespace mlink::bfd {

uint64_t EchoBurst::next_gap(bool missed, uint64_t plain_us, uint64_t fast_us) {
  if (ready() && missed && fast_us < plain_us) {
    left_ = kLength;
    rest_ = 0;
  }
  if (left_ > 0) {
    left_--;
    return fast_us;
  }
  rest_ = std::min(rest_ + 1, kRest);
  return plain_us;
}

}  // namespace mlink::bfd
