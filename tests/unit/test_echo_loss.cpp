#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "bfd/echo_loss.h"

using mlink::bfd::EchoLoss;

namespace {

// Sends one echo and, if `back`, its reflection; then decides with grace 3.
std::optional<bool> step(EchoLoss& l, uint32_t& seq, bool back) {
  l.sent(seq);
  if (back) l.received(seq);
  seq++;
  return l.update(3);
}

}  // namespace

TEST_CASE("a clean link is never lossy; nothing is decided within the grace") {
  EchoLoss l;
  uint32_t seq = 0xfffffff0;  // across the wrap
  for (int i = 0; i < 3; i++) CHECK_FALSE(step(l, seq, false).has_value());
  l.reset();
  for (int i = 0; i < 200; i++) CHECK_FALSE(step(l, seq, true).has_value());
  CHECK_FALSE(l.lossy());
  CHECK(l.lost() == 0);
}

TEST_CASE("a few scattered losses are not lossy; kEnter within the window are") {
  EchoLoss l;
  uint32_t seq = 7;
  for (int i = 0; i < 100; i++) CHECK_FALSE(step(l, seq, i % 20 != 0).has_value());
  CHECK(l.lost() <= 2);
  std::optional<bool> changed;
  int i = 0;
  for (; i < 40 && !changed; i++) changed = step(l, seq, i % 2 != 0);
  REQUIRE(changed.has_value());
  CHECK(*changed);
  CHECK(l.lossy());
  CHECK(l.lost() >= EchoLoss::kEnter);
}

TEST_CASE("lossy until a full window of echoes came back") {
  EchoLoss l;
  uint32_t seq = 0;
  for (unsigned i = 0; i < 3 + EchoLoss::kEnter; i++) step(l, seq, false);
  CHECK(l.lossy());
  // Repaired: the lost ones leave the window one by one, then a whole window is clean.
  int cleared_after = -1;
  for (int i = 0; i < 100 && cleared_after < 0; i++)
    if (auto c = step(l, seq, true)) {
      CHECK_FALSE(*c);
      cleared_after = i + 1;
    }
  CHECK(cleared_after == static_cast<int>(EchoLoss::kWindow + 3));
}

TEST_CASE("a late or foreign reflection counts only for its own echo") {
  EchoLoss l;
  uint32_t seq = 100;
  for (int i = 0; i < 10; i++) step(l, seq, true);
  l.received(seq + 5);    // never sent
  l.received(seq - 200);  // too old to know
  for (int i = 0; i < 2; i++) step(l, seq, false);
  l.received(seq - 1);  // came back late, within the grace
  CHECK_FALSE(step(l, seq, true).has_value());
  CHECK(l.lost() == 0);
}

TEST_CASE("30 % random loss is found within about a second of echoes at 30 ms") {
  std::mt19937 rng(42);
  std::bernoulli_distribution lost(0.3);
  int worst = 0, total = 0;
  for (int run = 0; run < 200; run++) {
    EchoLoss l;
    uint32_t seq = 0;
    int n = 0;
    while (!l.lossy() && n < 1000) {
      step(l, seq, !lost(rng));
      n++;
    }
    worst = std::max(worst, n);
    total += n;
  }
  // kEnter losses take 4 / 0.3 = 13 echoes on average, plus the grace.
  CHECK(total / 200 <= 20);
  CHECK(worst <= 3 + 2 * static_cast<int>(EchoLoss::kWindow));
}

// Group echo: the datapath keeps the newest seq that came back and a bitmap of the 64 before
// it; observe() must decide exactly as the per-echo calls would on the same history.
TEST_CASE("observe() from the datapath's bitmap decides like sent()/received()") {
  std::mt19937 rng(7);
  std::bernoulli_distribution lost(0.2);
  EchoLoss per_echo, observed;
  uint32_t first = 0xfffffff0u, seq = first;  // across the wrap of the sequence numbers
  uint32_t newest = 0;
  uint64_t bits = 0;
  bool any = false;
  for (int i = 0; i < 200; i++) {
    per_echo.sent(seq);
    if (!lost(rng)) {
      per_echo.received(seq);
      uint32_t d = seq - newest;
      bits = !any || d >= 64 ? 1 : (bits << d) | 1;
      newest = seq;
      any = true;
    }
    seq++;
    auto a = per_echo.update(3);
    if (any) observed.observe(seq, seq - first, newest, bits);
    auto b = any ? observed.update(3) : std::nullopt;
    CAPTURE(i);
    if (any) {
      CHECK(a == b);
      CHECK(per_echo.lossy() == observed.lossy());
      CHECK(per_echo.lost() == observed.lost());
    }
  }
}
