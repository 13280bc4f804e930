#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "linkset/rebalance.h"

using namespace mlink::linkset;

namespace {

std::vector<Member> links(unsigned n) {
  std::vector<Member> m;
  for (unsigned i = 0; i < n; i++)
    m.push_back({static_cast<uint8_t>(i), 0x3000u + i, 1, false, true});
  return m;
}

Activity not_(const Activity& a) {
  Activity n{};
  for (unsigned b = 0; b < ML_BUCKETS; b++) n[b] = !a[b];
  return n;
}

// Active buckets per slot under table t.
std::array<unsigned, ML_MAX_SLOTS> active_per_slot(const BucketTable& t, const Activity& a) {
  std::array<unsigned, ML_MAX_SLOTS> n{};
  for (unsigned b = 0; b < ML_BUCKETS; b++)
    if (a[b] && t[b] < ML_MAX_SLOTS) n[t[b]]++;
  return n;
}

// Active buckets that all hash onto slot 0 of the base table.
Activity active_on(const BucketTable& base, uint8_t slot, unsigned count) {
  Activity a{};
  for (unsigned b = 0; b < ML_BUCKETS && count; b++)
    if (base[b] == slot) a[b] = true, count--;
  return a;
}

}  // namespace

TEST_CASE("8 flows all hashed onto one of 3 links end up 3/3/2") {
  auto m = links(3);
  auto base = build(m);
  Activity a = active_on(base, 0, 8);
  Overrides ov;
  CHECK(rebalance(base, m, a, not_(a), ov) == 5);
  auto n = active_per_slot(apply_overrides(base, m, ov), a);
  CHECK(n[0] + n[1] + n[2] == 8);
  CHECK(n[0] <= 3);
  CHECK(n[1] >= 2);
  CHECK(n[2] >= 2);
}

TEST_CASE("a balanced set is left alone, and inactive buckets never move") {
  auto m = links(3);
  auto base = build(m);
  Activity a{};
  for (unsigned slot = 0; slot < 3; slot++)  // one active bucket per link
    for (unsigned b = 0; b < ML_BUCKETS; b++)
      if (base[b] == slot) {
        a[b] = true;
        break;
      }
  Overrides ov;
  CHECK(rebalance(base, m, a, not_(a), ov) == 0);
  CHECK(ov.count() == 0);
  a = active_on(base, 1, 4);
  rebalance(base, m, a, not_(a), ov);
  auto t = apply_overrides(base, m, ov);
  for (unsigned b = 0; b < ML_BUCKETS; b++)
    if (!a[b]) CHECK(t[b] == base[b]);
}

TEST_CASE("an override lasts while its bucket is active, and goes when it idles") {
  auto m = links(2);
  auto base = build(m);
  Activity a = active_on(base, 0, 2);
  Overrides ov;
  CHECK(rebalance(base, m, a, not_(a), ov) == 1);
  CHECK(ov.count() == 1);
  CHECK(rebalance(base, m, a, not_(a), ov) == 0);  // steady: nothing more moves
  CHECK(ov.count() == 1);
  CHECK(rebalance(base, m, Activity{}, not_(Activity{}), ov) == 0);
  CHECK(ov.count() == 0);
}

TEST_CASE("overrides onto a link that fails are dropped at once") {
  auto m = links(3);
  auto base = build(m);
  Activity a = active_on(base, 0, 6);
  Overrides ov;
  rebalance(base, m, a, not_(a), ov);
  m[1].usable = false;
  auto failed = build(m);
  auto t = apply_overrides(failed, m, ov);
  for (auto s : t) CHECK(s != 1);
}

TEST_CASE("weights 3:1 balance active buckets 3:1") {
  std::vector<Member> m{{0, 1, 3, false, true}, {1, 2, 1, false, true}};
  auto base = build(m);
  Activity a = active_on(base, 1, 8);
  Overrides ov;
  rebalance(base, m, a, not_(a), ov);
  auto n = active_per_slot(apply_overrides(base, m, ov), a);
  CHECK(n[0] == 6);
  CHECK(n[1] == 2);
}

TEST_CASE("backup links take no moved bucket while a primary is usable") {
  std::vector<Member> m{{0, 1, 1, false, true}, {1, 2, 1, true, true}};
  auto base = build(m);
  Activity a = active_on(base, 0, 4);
  Overrides ov;
  CHECK(rebalance(base, m, a, not_(a), ov) == 0);
}

TEST_CASE("random flow sets: no usable link idles while another holds two or more") {
  std::mt19937 rng(7);
  auto m = links(3);
  auto base = build(m);
  for (int round = 0; round < 500; round++) {
    Activity a{};
    unsigned flows = 2 + rng() % 12;
    for (unsigned f = 0; f < flows; f++) a[rng() % ML_BUCKETS] = true;
    Overrides ov;
    rebalance(base, m, a, not_(a), ov);
    auto n = active_per_slot(apply_overrides(base, m, ov), a);
    unsigned lo = std::min({n[0], n[1], n[2]}), hi = std::max({n[0], n[1], n[2]});
    CHECK(hi - lo <= 1);
  }
}

TEST_CASE("mice do not count as load: only buckets with a fair share of the busiest") {
  std::array<uint64_t, ML_BUCKETS> pkts{};
  pkts[3] = 1000;
  pkts[7] = 60;  // 6 %: an elephant slowed by its window still counts
  pkts[9] = 2;   // a control connection
  auto a = busy_buckets(pkts);
  CHECK(a[3]);
  CHECK(a[7]);
  CHECK_FALSE(a[9]);
  CHECK_FALSE(a[0]);
  CHECK(busy_buckets({}) == Activity{});
}

TEST_CASE("a bucket below the busy threshold keeps its override until it is idle") {
  auto m = links(2);
  auto base = build(m);
  Activity busy = active_on(base, 0, 2);
  Overrides ov;
  CHECK(rebalance(base, m, busy, not_(busy), ov) == 1);
  CHECK(ov.count() == 1);
  // both buckets still send, but too little to count as load: no move home yet
  CHECK(rebalance(base, m, Activity{}, Activity{}, ov) == 0);
  CHECK(ov.count() == 1);
  std::array<uint64_t, ML_BUCKETS> none{};
  CHECK(rebalance(base, m, Activity{}, idle_buckets(none), ov) == 0);
  CHECK(ov.count() == 0);
}
