#include <doctest/doctest.h>

#include <array>
#include <cstddef>

#include "linkset/buckets.h"

using mlink::linkset::build;
using mlink::linkset::Member;
using mlink::linkset::share;

namespace {

std::vector<Member> three_links() {
  return {{0, 0x1001, 1, false, true}, {1, 0x1002, 1, false, true}, {2, 0x1003, 1, false, true}};
}

unsigned moved(const mlink::linkset::BucketTable& a, const mlink::linkset::BucketTable& b) {
  unsigned n = 0;
  for (std::size_t i = 0; i < a.size(); i++) n += a[i] != b[i];
  return n;
}

}  // namespace

TEST_CASE("equal weights split the buckets exactly, spread over the table") {
  auto t = build(three_links());
  auto s = share(t);
  CHECK(s[0] == 86);
  CHECK(s[1] == 85);
  CHECK(s[2] == 85);
  for (unsigned half : {0u, 1u}) {  // not in runs: each link in both halves
    std::array<unsigned, ML_MAX_SLOTS> n{};
    for (unsigned b = half * ML_BUCKETS / 2; b < (half + 1) * ML_BUCKETS / 2; b++) n[t[b]]++;
    for (unsigned l = 0; l < 3; l++) CHECK(n[l] > 30);
  }
}

TEST_CASE("a weight change moves the buckets of the link concerned") {
  // Two links: exactly the difference moves, and only off (or onto) that link.
  std::vector<Member> m{{0, 0x1001, 3, false, true}, {1, 0x1002, 3, false, true}};
  auto before = build(m);
  m[1].weight = 1;
  auto after = build(m);
  CHECK(share(after)[1] == ML_BUCKETS / 4);
  CHECK(moved(before, after) == ML_BUCKETS / 4);
  for (std::size_t b = 0; b < before.size(); b++)
    if (before[b] != after[b]) CHECK((before[b] == 1 && after[b] == 0));
  // More links: the quotas decide which go; now and then a bucket of the link concerned
  // displaces one of another link, but nothing like a reshuffle.
  for (uint32_t w : {1u, 2u, 4u, 7u}) {
    auto three = three_links();
    auto b3 = build(three);
    three[1].weight = w;
    auto a3 = build(three);
    unsigned concerned = 0, other = 0;
    for (std::size_t b = 0; b < b3.size(); b++)
      if (b3[b] != a3[b]) (b3[b] == 1 || a3[b] == 1 ? concerned : other)++;
    CAPTURE(w);
    unsigned need =
        share(b3)[1] > share(a3)[1] ? share(b3)[1] - share(a3)[1] : share(a3)[1] - share(b3)[1];
    CHECK(concerned >= need);
    CHECK(concerned + other <= need + 8);
  }
}

TEST_CASE("weights 3:1 give 75/25 up to one bucket") {
  std::vector<Member> m{{0, 1, 3, false, true}, {1, 2, 1, false, true}};
  auto s = share(build(m));
  CHECK(s[0] == ML_BUCKETS * 3 / 4);
  CHECK(s[1] == ML_BUCKETS / 4);
}

TEST_CASE("a link's removal rewrites only its own buckets, and its return restores them") {
  auto links = three_links();
  auto before = build(links);
  links[1].usable = false;
  auto after = build(links);
  for (std::size_t b = 0; b < before.size(); b++) {
    if (before[b] == 1)
      CHECK(after[b] != 1);
    else
      CHECK(after[b] == before[b]);
  }
  CHECK(moved(before, after) == share(before)[1]);
  // orphans spread over the survivors, not dumped on one
  CHECK(share(after)[0] > 100);
  CHECK(share(after)[2] > 100);
  links[1].usable = true;
  CHECK(build(links) == before);
}

TEST_CASE("a second failure moves only the buckets the failing link holds") {
  std::vector<Member> m;
  for (uint8_t i = 0; i < 4; i++) m.push_back({i, 0x2000u + i, 1, false, true});
  m[0].usable = false;
  auto one_down = build(m);
  m[1].usable = false;
  auto two_down = build(m);
  for (std::size_t b = 0; b < one_down.size(); b++)
    if (one_down[b] != 1) CHECK(two_down[b] == one_down[b]);
}

TEST_CASE("the table depends on canonical order and ids, not on history") {
  auto links = three_links();
  links[2].usable = false;
  auto direct = build(links);
  links[2].usable = true;
  (void)build(links);
  links[0].usable = false;
  links[0].usable = true;
  links[2].usable = false;
  CHECK(build(links) == direct);
}

TEST_CASE("backup links carry traffic only while no primary is usable") {
  std::vector<Member> m{{0, 1, 1, false, true}, {1, 2, 1, false, true}, {2, 3, 1, true, true}};
  CHECK(share(build(m))[2] == 0);
  m[0].usable = false;
  CHECK(share(build(m))[2] == 0);
  CHECK(share(build(m))[1] == ML_BUCKETS);
  m[1].usable = false;
  CHECK(share(build(m))[2] == ML_BUCKETS);
}

TEST_CASE("no usable link leaves every bucket empty") {
  auto links = three_links();
  for (auto& l : links) l.usable = false;
  CHECK(share(build(links)) == std::array<unsigned, ML_MAX_SLOTS>{});
  CHECK(build({})[0] == ML_SLOT_NONE);
}
