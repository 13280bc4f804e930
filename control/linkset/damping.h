// damping.h - hold-down of a repaired link, growing while it flaps.
//
// A link whose session comes back Up returns to service only after a
// hold-down: 0 after a quiet period (first Up, or no failure in the last
// window), else base × 2^(failures in the window − 1), capped at 3 s. One
// failure and repair costs 0.5 s; a link that fails again within its
// hold-down stays out, so flows are not moved back and forth onto a link
// that keeps failing; a link that has settled is back within 3 s. (A loss
// episode, bfd/echo_loss.h, counts as a failure.)
#pragma once

#include <cstdint>
#include <deque>

namespace mlink::linkset {

class Damping {
 public:
  static constexpr uint64_t kBaseUsec = 500'000;
  static constexpr uint64_t kMaxUsec = 3'000'000;
  static constexpr uint64_t kWindowUsec = 60'000'000;

  void on_down(uint64_t now_us);
  void on_up(uint64_t now_us) { up_since_ = now_us; }
  // Whether a link Up since on_up() may carry traffic at now_us.
  bool usable(uint64_t now_us);
  uint64_t hold_down_us(uint64_t now_us);  // of the current Up period

 private:
  void prune(uint64_t now_us);
  std::deque<uint64_t> downs_;  // failure times within the window
  uint64_t up_since_ = 0;
};

}  // namespace mlink::linkset
