// log::RateLimit: a flood of rejected packets becomes at most `burst` log lines a second,
// and the next line says how many were held back.
#include <doctest/doctest.h>

#include "common/log.h"

using mlink::log::RateLimit;

TEST_CASE("log rate limit: 10 a second, the rest counted and reported once") {
  RateLimit r(10);
  int allowed = 0;
  for (uint64_t t = 0; t < 1000; t++) allowed += r.allow(5'000'000 + t * 100);  // 0.1 s
  CHECK(allowed == 10);
  CHECK(mlink::log::suppressed_note(r) == " (990 more since the last such line)");
  CHECK(mlink::log::suppressed_note(r).empty());
  CHECK(r.allow(6'000'000));  // a new second
}
