#include "linkset/buckets.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace mlink::linkset {
namespace {

uint64_t mix64(uint64_t x) {  // splitmix64 finaliser: a well-spread 64-bit hash
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Weighted rendezvous score of a member for a bucket: -w / ln(u), u in (0,1).
double rendezvous_score(const Member& m, unsigned bucket) {
  uint64_t h = mix64(m.id ^ mix64(bucket));
  double u = (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53;
  return -static_cast<double>(m.weight) / std::log(u);
}

std::vector<const Member*> active_class(const std::vector<Member>& members) {
  bool primary_usable = false;
  for (const auto& m : members) primary_usable |= !m.backup && m.usable;
  std::vector<const Member*> out;
  for (const auto& m : members)
    if (m.backup != primary_usable && m.weight > 0 && m.slot < ML_MAX_SLOTS) out.push_back(&m);
  return out;
}

// Each member's exact share of the buckets: floor(N * w / W), the rest by
// largest remainder, ties to the earlier member in canonical order.
std::vector<unsigned> quotas(const std::vector<const Member*>& cls) {
  uint64_t total = 0;
  for (const auto* m : cls) total += m->weight;
  std::vector<unsigned> q(cls.size());
  std::vector<std::pair<uint64_t, size_t>> rem;  // (remainder, index)
  unsigned given = 0;
  for (size_t i = 0; i < cls.size(); i++) {
    uint64_t x = uint64_t{ML_BUCKETS} * cls[i]->weight;
    q[i] = static_cast<unsigned>(x / total);
    given += q[i];
    rem.emplace_back(x % total, i);
  }
  std::stable_sort(rem.begin(), rem.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t r = 0; given < ML_BUCKETS; r++, given++) q[rem[r].second]++;
  return q;
}

// Rendezvous with quotas: every (bucket, member) pair by its rendezvous score,
// best first; a bucket goes to the first member that still has room. Exact
// shares, and a bucket stays where it is unless the quotas force it out: a
// weight change moves the buckets of the link concerned (between two links,
// nothing else; with more, now and then a few that its buckets displace),
// where a round-robin layout would reshuffle most of the table.
BucketTable home_table(const std::vector<const Member*>& cls) {
  BucketTable t;
  t.fill(ML_SLOT_NONE);
  if (cls.empty()) return t;
  auto room = quotas(cls);
  struct Pair {
    double score;
    uint16_t bucket;
    uint8_t member;
  };
  std::vector<Pair> pairs;
  pairs.reserve(ML_BUCKETS * cls.size());
  for (unsigned b = 0; b < ML_BUCKETS; b++)
    for (size_t i = 0; i < cls.size(); i++)
      pairs.push_back(
          {rendezvous_score(*cls[i], b), static_cast<uint16_t>(b), static_cast<uint8_t>(i)});
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.bucket != b.bucket ? a.bucket < b.bucket : a.member < b.member;
  });
  unsigned left = ML_BUCKETS;
  for (const auto& p : pairs) {
    if (t[p.bucket] != ML_SLOT_NONE || room[p.member] == 0) continue;
    t[p.bucket] = cls[p.member]->slot;
    room[p.member]--;
    if (--left == 0) break;
  }
  return t;
}

uint8_t rendezvous_owner(const std::vector<const Member*>& cls, unsigned bucket) {
  const Member* best = nullptr;
  double best_score = -std::numeric_limits<double>::infinity();
  for (const auto* m : cls) {
    if (!m->usable) continue;
    double s = rendezvous_score(*m, bucket);
    if (!best || s > best_score) best = m, best_score = s;
  }
  return best ? best->slot : ML_SLOT_NONE;
}

}  // namespace

BucketTable build(const std::vector<Member>& members) {
  auto cls = active_class(members);
  BucketTable t = home_table(cls);
  std::array<bool, ML_MAX_SLOTS> usable{};
  for (const auto* m : cls) usable[m->slot] = m->usable;
  for (unsigned b = 0; b < t.size(); b++)
    if (t[b] != ML_SLOT_NONE && !usable[t[b]]) t[b] = rendezvous_owner(cls, b);
  return t;
}

std::array<unsigned, ML_MAX_SLOTS> share(const BucketTable& table) {
  std::array<unsigned, ML_MAX_SLOTS> n{};
  for (auto s : table)
    if (s < ML_MAX_SLOTS) n[s]++;
  return n;
}

std::array<unsigned, ML_MAX_SLOTS> share(const ml_peer& entry) {
  BucketTable t;
  std::copy(std::begin(entry.buckets), std::end(entry.buckets), t.begin());
  return share(t);
}

}  // namespace mlink::linkset
