// The topology protocol's replay state is bounded (proto/topo/replay.h).
#include <doctest/doctest.h>

#include <string>

#include "proto/topo/replay.h"

using mlink::topo::ReplayGuard;

TEST_CASE("ReplayGuard: at most capacity senders; the one silent longest is dropped") {
  const uint64_t e = uint64_t{0x66000000} << 32;
  ReplayGuard g(3);
  CHECK(g.accept("a", 1, e | 1));
  CHECK(g.accept("b", 1, e | 1));
  CHECK(g.accept("c", 1, e | 1));
  CHECK(g.accept("a", 1, e | 2));  // a spoke last: b is now the stalest
  CHECK(g.accept("d", 1, e | 1));
  CHECK(g.size() == 3);
  CHECK(g.evicted() == 1);
  CHECK_FALSE(g.accept("a", 1, e | 2));  // a, c and d are still guarded
  CHECK_FALSE(g.accept("c", 1, e | 1));
  CHECK_FALSE(g.accept("d", 1, e | 1));
  CHECK(g.accept("b", 1, e | 1));  // b's state went: its old number counts as new, once
  CHECK_FALSE(g.accept("b", 1, e | 1));
  CHECK(g.evicted() == 2);  // c went for b
  CHECK(g.size() == 3);
  // A rejected (replayed) packet does not make its sender recent.
  CHECK(g.accept("a", 1, e | 3));        // a, b recent; d is the stalest
  CHECK_FALSE(g.accept("d", 1, e | 1));  // a replay of d: d stays the stalest
  CHECK(g.accept("x", 1, e | 1));        // so d, silent since, goes
  CHECK(g.accept("d", 1, e | 1));
  // forget drops every key id of a node and frees its room.
  CHECK(g.accept("y", 2, e | 1));
  g.forget("y");
  g.forget("nobody");
  CHECK(g.size() <= 3);
  CHECK(ReplayGuard().capacity() == ReplayGuard::kDefaultCapacity);
}

TEST_CASE("ReplayGuard: 40,000 senders stay within the default capacity") {
  ReplayGuard g;
  int accepted = 0;
  for (int i = 0; i < 40000; i++) accepted += g.accept("n" + std::to_string(i), 1, 7);
  CHECK(accepted == 40000);
  CHECK(g.size() == ReplayGuard::kDefaultCapacity);
  CHECK(g.evicted() == 40000 - ReplayGuard::kDefaultCapacity);
  CHECK_FALSE(g.accept("n39999", 1, 7));
}
