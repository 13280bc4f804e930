#include "bfd/echo_loss.h"

#include <algorithm>
#include <bit>

namespace mlink::bfd {

void EchoLoss::reset() {
  *this = EchoLoss{};
}

void EchoLoss::sent(uint32_t seq) {
  got_ <<= 1;
  next_seq_ = seq + 1;
  sent_ = std::min(sent_ + 1, kBits);
}

void EchoLoss::received(uint32_t seq) {
  uint32_t age = next_seq_ - 1 - seq;  // modulo 2^32: a seq from the future is huge
  if (age < sent_) got_ |= uint64_t{1} << age;
}

void EchoLoss::observe(uint32_t next_seq, uint32_t sent, uint32_t last_rx_seq, uint64_t rx_bits) {
  uint32_t age = next_seq - 1 - last_rx_seq;  // sends after the newest that came back
  got_ = age < kBits ? rx_bits << age : 0;
  next_seq_ = next_seq;
  sent_ = std::min<uint32_t>(sent, kBits);
  if (sent_ < kBits) got_ &= (uint64_t{1} << sent_) - 1;  // nothing before the count began
}

std::optional<bool> EchoLoss::update(unsigned grace) {
  grace = std::min(grace, kBits - kWindow);
  if (sent_ <= grace) return std::nullopt;
  unsigned decided = std::min(sent_ - grace, kWindow);
  uint64_t window = (decided == 64 ? ~uint64_t{0} : (uint64_t{1} << decided) - 1) << grace;
  lost_ = static_cast<unsigned>(std::popcount(~got_ & window));
  bool was = lossy_;
  if (!lossy_ && lost_ >= kEnter)
    lossy_ = true;
  else if (lossy_ && decided == kWindow && lost_ == 0)
    lossy_ = false;
  if (lossy_ == was) return std::nullopt;
  return lossy_;
}

}  // namespace mlink::bfd
