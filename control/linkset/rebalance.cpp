#include "linkset/rebalance.h"

#include <algorithm>

namespace mlink::linkset {
namespace {

// Slots a bucket may be moved to: usable members of the class the table uses.
std::array<uint32_t, ML_MAX_SLOTS> eligible_weights(const BucketTable& base,
                                                    const std::vector<Member>& members) {
  std::array<bool, ML_MAX_SLOTS> in_table{};
  for (auto s : base)
    if (s < ML_MAX_SLOTS) in_table[s] = true;
  bool backups_serving = false;
  for (const auto& m : members)
    if (m.slot < ML_MAX_SLOTS && in_table[m.slot] && m.backup) backups_serving = true;
  std::array<uint32_t, ML_MAX_SLOTS> w{};
  for (const auto& m : members)
    if (m.slot < ML_MAX_SLOTS && m.usable && m.backup == backups_serving) w[m.slot] = m.weight;
  return w;
}

struct Load {
  std::array<double, ML_MAX_SLOTS> excess{};  // active buckets above the weighted fair share
  int most = -1, least = -1;
};

Load measure(const BucketTable& table, const Activity& active,
             const std::array<uint32_t, ML_MAX_SLOTS>& w) {
  std::array<unsigned, ML_MAX_SLOTS> n{};
  unsigned total = 0;
  uint64_t wsum = 0;
  for (unsigned b = 0; b < ML_BUCKETS; b++)
    if (active[b] && table[b] < ML_MAX_SLOTS && w[table[b]]) n[table[b]]++, total++;
  for (auto x : w) wsum += x;
  Load l;
  for (int s = 0; s < ML_MAX_SLOTS; s++) {
    if (!w[s]) continue;
    l.excess[s] = n[s] - static_cast<double>(total) * w[s] / static_cast<double>(wsum);
    if (l.most < 0 || l.excess[s] > l.excess[l.most]) l.most = s;
    if (l.least < 0 || l.excess[s] < l.excess[l.least]) l.least = s;
  }
  return l;
}

}  // namespace

Activity busy_buckets(const std::array<uint64_t, ML_BUCKETS>& packets) {
  uint64_t most = 0;
  for (auto n : packets) most = std::max(most, n);
  Activity a{};
  for (unsigned b = 0; b < ML_BUCKETS; b++)
    a[b] = packets[b] > 0 && packets[b] * kBusyFraction >= most;
  return a;
}

unsigned Overrides::count() const {
  unsigned n = 0;
  for (auto s : slot) n += s != ML_SLOT_NONE;
  return n;
}

BucketTable apply_overrides(const BucketTable& base, const std::vector<Member>& members,
                            Overrides& ov) {
  auto w = eligible_weights(base, members);
  BucketTable t = base;
  for (unsigned b = 0; b < ML_BUCKETS; b++) {
    uint8_t s = ov.slot[b];
    if (s == ML_SLOT_NONE) continue;
    if (s < ML_MAX_SLOTS && w[s] && base[b] != ML_SLOT_NONE)
      t[b] = s;
    else
      ov.slot[b] = ML_SLOT_NONE;
  }
  return t;
}

Activity idle_buckets(const std::array<uint64_t, ML_BUCKETS>& packets) {
  Activity a{};
  for (unsigned b = 0; b < ML_BUCKETS; b++) a[b] = packets[b] == 0;
  return a;
}

unsigned rebalance(const BucketTable& base, const std::vector<Member>& members,
                   const Activity& active, const Activity& idle, Overrides& ov) {
  for (unsigned b = 0; b < ML_BUCKETS; b++)
    if (idle[b]) ov.slot[b] = ML_SLOT_NONE;
  BucketTable t = apply_overrides(base, members, ov);
  auto w = eligible_weights(base, members);
  unsigned moves = 0;
  for (; moves < ML_BUCKETS; moves++) {
    Load l = measure(t, active, w);
    if (l.most < 0 || l.excess[l.most] - l.excess[l.least] <= 1.0) break;
    int from = -1;  // highest-index active bucket on the most crowded link
    for (int b = ML_BUCKETS - 1; b >= 0 && from < 0; b--)
      if (active[b] && t[b] == l.most) from = b;
    t[from] = static_cast<uint8_t>(l.least);
    ov.slot[from] = static_cast<uint8_t>(l.least);
  }
  return moves;
}

}  // namespace mlink::linkset
