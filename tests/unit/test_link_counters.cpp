#include <doctest/doctest.h>

#include "linkset/link_counters.h"

using mlink::linkset::LinkCounters;
using mlink::linkset::SlotCounters;

namespace {
SlotCounters counters(std::initializer_list<uint64_t> packets) {
  SlotCounters c{};
  size_t s = 0;
  for (uint64_t p : packets) c[s++] = {p, p * 100};
  return c;
}
}  // namespace

TEST_CASE("link totals survive slot renumbering and never go down") {
  LinkCounters lc;
  // Links 10, 11, 12 in slots 0, 1, 2; the peer id was used before: its old counts are not ours.
  lc.assign(7, {10, 11, 12}, counters({5, 5, 5}));
  auto now = counters({105, 55, 25});
  CHECK(lc.total(7, 0, now).packets == 100);
  CHECK(lc.total(7, 1, now).packets == 50);
  CHECK(lc.total(7, 2, now).bytes == 2000);
  CHECK(lc.same(7, {10, 11, 12}));
  CHECK_FALSE(lc.same(7, {11, 12}));
  // Link 10 leaves: 11 and 12 move to slots 0 and 1, whose counters held other links' counts.
  lc.assign(7, {11, 12}, now);
  auto later = counters({115, 58, 25});
  CHECK(lc.total(7, 0, later).packets == 50 + 10);  // link 11: its old slot, then slot 0
  CHECK(lc.total(7, 1, later).packets == 20 + 3);   // link 12
  // Link 10 returns to slot 0: it continues from its own 100.
  lc.assign(7, {10, 11, 12}, later);
  auto last = counters({116, 60, 27});
  CHECK(lc.total(7, 0, last).packets == 101);
  CHECK(lc.total(7, 1, last).packets == 60 + 2);
  CHECK(lc.total(7, 2, last).packets == 23 + 2);
  // A peer id given to another peer starts from zero.
  lc.forget(7);
  lc.assign(7, {20}, last);
  CHECK(lc.total(7, 0, counters({120})).packets == 4);
}
