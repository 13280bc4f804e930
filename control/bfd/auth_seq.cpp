#include "bfd/auth_seq.h"

namespace mlink::bfd {

bool RxAuthSeq::acceptable(uint32_t seq, uint8_t detect_mult, bool meticulous,
                           uint64_t now_us) const {
  if (!known(now_us)) return true;
  uint32_t ahead = seq - last_;  // circular
  uint32_t lo = meticulous ? 1 : 0;
  return ahead >= lo && ahead <= 3u * detect_mult;
}

void RxAuthSeq::accepted(uint32_t seq, uint64_t now_us, uint64_t detect_time_us) {
  known_ = true;
  last_ = seq;
  forget_at_us_ = now_us + 2 * detect_time_us;
}

std::optional<uint32_t> RxAuthSeq::known(uint64_t now_us) const {
  if (!known_ || now_us >= forget_at_us_) return std::nullopt;
  return last_;
}

void RxAuthSeq::restore(uint32_t seq, uint64_t now_us, uint64_t forget_after_us) {
  known_ = true;
  last_ = seq;
  forget_at_us_ = now_us + forget_after_us;
}

}  // namespace mlink::bfd
