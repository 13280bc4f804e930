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

// docs/PROTOCOL.md "Replay", the rule for a sender whose numbers restart below what was
// accepted: one packet numbered near 2^64 (a bug, or a key holder) or a clock stepped back
// across a restart locks the node out only until its state is forgotten, which discovery does
// when the node leaves the neighbour table and for any state idle past the longest hold time.
TEST_CASE("ReplayGuard: a sender locked out by a huge number gets back in once forgotten") {
  const uint64_t e = uint64_t{0x66000000} << 32;
  ReplayGuard g;
  CHECK(g.accept("a", 1, e | 1, 1'000));
  CHECK(g.accept("a", 1, UINT64_MAX, 2'000));   // one bad packet
  CHECK_FALSE(g.accept("a", 1, e | 2, 3'000));  // every real one after it is a "replay"
  CHECK_FALSE(g.accept("a", 1, e | 3, 4'000));
  g.forget("a");  // its neighbour entry expired
  CHECK(g.forgotten() == 1);
  CHECK(g.accept("a", 1, e | 4, 5'000));
  CHECK_FALSE(g.accept("a", 1, e | 4, 5'000));  // and guarded again at once
}

TEST_CASE("ReplayGuard: expire_idle drops exactly the states idle for that long, oldest first") {
  ReplayGuard g;
  CHECK(g.accept("a", 1, 10, 1'000));
  CHECK(g.accept("b", 1, 10, 2'000));
  CHECK(g.accept("c", 1, 10, 3'000));
  CHECK(g.accept("a", 1, 11, 4'000));        // a is recent again
  CHECK_FALSE(g.accept("b", 1, 10, 4'500));  // a refused packet does not count as use
  CHECK(g.expire_idle(5'000, 2'500) == 1);   // b (idle since 2,000); c at 3,000 is kept
  CHECK(g.size() == 2);
  CHECK(g.accept("b", 1, 10, 5'000));        // b's state went
  CHECK_FALSE(g.accept("c", 1, 10, 5'000));  // c's did not
  CHECK(g.expire_idle(100'000, 2'500) == 3);
  CHECK(g.size() == 0);
  CHECK(g.forgotten() == 4);
}

TEST_CASE("ReplayGuard: forget_key drops one key id's states, the others stay") {
  ReplayGuard g;
  CHECK(g.accept("a", 1, 10));
  CHECK(g.accept("a", 2, 10));
  CHECK(g.accept("b", 1, 10));
  g.forget_key(1);
  CHECK(g.size() == 1);
  CHECK_FALSE(g.accept("a", 2, 10));
  CHECK(g.accept("a", 1, 10));
}
