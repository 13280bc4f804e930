#include <doctest/doctest.h>

#include "linkset/damping.h"

using mlink::linkset::Damping;

TEST_CASE("a link that never failed is usable as soon as it is Up") {
  Damping d;
  d.on_up(1000);
  CHECK(d.usable(1000));
}

TEST_CASE(
    "hold-down after a repair, doubling while the link flaps, capped, forgotten after the window") {
  Damping d;
  uint64_t t = 1'000'000;
  d.on_down(t);
  d.on_up(t + 100'000);
  CHECK_FALSE(d.usable(t + 100'000 + Damping::kBaseUsec - 1));
  CHECK(d.usable(t + 100'000 + Damping::kBaseUsec));
  // Flapping every 0.5 s: each failure doubles the hold-down.
  uint64_t expect = Damping::kBaseUsec;
  for (int i = 0; i < 12; i++) {
    t += 500'000;
    d.on_down(t);
    d.on_up(t + 250'000);
    expect = std::min(expect * 2, Damping::kMaxUsec);
    CHECK(d.hold_down_us(t + 250'000) == expect);
    CHECK_FALSE(d.usable(t + 250'000 + expect - 1));
  }
  CHECK(d.hold_down_us(t) == Damping::kMaxUsec);
  // A quiet window later, the next repair is immediate.
  CHECK(d.usable(t + Damping::kWindowUsec));
}
