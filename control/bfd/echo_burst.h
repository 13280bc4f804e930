// echo_burst.h - when to send echoes faster: a short burst after one goes unanswered.
//
// The loss figure (echo_loss.h) needs samples. At the configured rate (30 ms) 30 % loss takes
// ~0.45 s to show as 4 of 32 lost, and one run in ten takes over 0.65 s: long enough for a
// TCP stream on that link to back off twice (200 + 400 ms RTO) and stall for over a second.
// So when an echo has not come back by the time the next one leaves, the next kLength leave
// at 1/kDivisor of the interval: a lossy link gets its 32 samples in a quarter of the time
// (30 % loss out in ~0.25 s, one run in a hundred over 0.6 s), a clean one pays ~0.24 s of
// faster echoes for a lost packet. Bursts are kRest plain echoes apart, so a link that loses
// steadily costs its reflectors at most 1.6x the plain rate. Detection of a dead link is not
// changed: it still waits `multiplier` plain intervals.
#pragma once

#include <cstdint>

#include "bfd/echo_loss.h"

namespace mlink::bfd {

class EchoBurst {
 public:
  static constexpr unsigned kDivisor = 4;                 // burst rate: 4x the plain rate
  static constexpr unsigned kLength = EchoLoss::kWindow;  // echoes per burst: one window
  static constexpr unsigned kRest = EchoLoss::kWindow;    // plain echoes between bursts

  // At each send: missed = the echo sent before this one has not come back (and the link is
  // not already judged lossy). Returns the time to the next send: fast_us in a burst, plain_us
  // otherwise (a peer whose advertised echo rate is no faster than plain_us gets no burst).
  uint64_t next_gap(bool missed, uint64_t plain_us, uint64_t fast_us);
  // How many of the latest echoes the loss figure leaves undecided (EchoLoss::update): those
  // of the last `multiplier` plain intervals, so an echo on a loaded link may be in flight as
  // long in a burst as outside one (a queue of 20 ms is 3 burst echoes).
  unsigned grace(unsigned multiplier) const {
    return active() || rest_ < multiplier ? multiplier * kDivisor : multiplier;
  }
  bool active() const { return left_ > 0; }
  bool ready() const { return left_ == 0 && rest_ >= kRest; }  // a miss now starts a burst
  void reset() { *this = EchoBurst{}; }

 private:
  unsigned left_ = 0;      // fast echoes still to send
  unsigned rest_ = kRest;  // plain echoes since the last burst (at most kRest)
};

}  // namespace mlink::bfd
