#include "linkset/buckets.h"

#include <cmath>
#include <limits>

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

// Smooth weighted round robin: exact shares, interleaved, deterministic.
BucketTable home_table(const std::vector<const Member*>& cls) {
  BucketTable t;
  t.fill(ML_SLOT_NONE);
  if (cls.empty()) return t;
  std::vector<int64_t> current(cls.size(), 0);
  int64_t total = 0;
  for (const auto* m : cls) total += m->weight;
  for (auto& b : t) {
    size_t best = 0;
    for (size_t i = 0; i < cls.size(); i++) {
      current[i] += cls[i]->weight;
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    b = cls[best]->slot;
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

}  // namespace mlink::linkset
