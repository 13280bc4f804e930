#include <doctest/doctest.h>

#include "bfd/echo_burst.h"

using mlink::bfd::EchoBurst;

namespace {
constexpr uint64_t kPlain = 30'000, kFast = 7'500;
}

TEST_CASE("echo burst: plain rate until a miss; then kLength fast echoes and kRest plain") {
  EchoBurst b;
  for (int i = 0; i < 100; i++) CHECK(b.next_gap(false, kPlain, kFast) == kPlain);
  CHECK(b.ready());
  CHECK(b.next_gap(true, kPlain, kFast) == kFast);
  CHECK(b.active());
  for (unsigned i = 1; i < EchoBurst::kLength; i++)
    CHECK(b.next_gap(i % 2, kPlain, kFast) == kFast);
  CHECK_FALSE(b.active());
  // Misses in the rest after a burst start nothing: a steadily lossy link costs its
  // reflectors at most kLength fast echoes per kRest plain ones.
  for (unsigned i = 0; i < EchoBurst::kRest; i++) CHECK(b.next_gap(true, kPlain, kFast) == kPlain);
  CHECK(b.ready());
  CHECK(b.next_gap(true, kPlain, kFast) == kFast);
}

TEST_CASE("echo burst: none when the peer asks for echoes no faster than the plain rate") {
  EchoBurst b;
  CHECK(b.next_gap(true, kPlain, kPlain) == kPlain);
  CHECK(b.next_gap(true, kPlain, 50'000) == kPlain);
  CHECK_FALSE(b.active());
  CHECK(b.ready());
}

TEST_CASE("echo burst: reset forgets a burst under way") {
  EchoBurst b;
  CHECK(b.next_gap(true, kPlain, kFast) == kFast);
  b.reset();
  CHECK_FALSE(b.active());
  CHECK(b.next_gap(false, kPlain, kFast) == kPlain);
}
