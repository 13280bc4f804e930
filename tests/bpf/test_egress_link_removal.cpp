// The bucket table through the real program: with the agent's builder writing the table, a
// link's removal moves only the flows that were on that link; every other flow keeps its link,
// and the flows of the removed link spread over the survivors. Its return restores all flows.
#include <doctest/doctest.h>

#include <vector>

#include "bpf/packets.h"
#include "linkset/buckets.h"

using namespace mlink::bpftest;

namespace {

constexpr uint32_t kPeerId = 9;

void write_table(ProgHarness& dp, ml_peer p, const std::vector<mlink::linkset::Member>& m) {
  auto t = mlink::linkset::build(m);
  std::copy(t.begin(), t.end(), p.buckets);
  for (const auto& x : m) p.slots[x.slot].state = x.usable ? ML_SLOT_UP : ML_SLOT_DOWN;
  dp.put_peer(peer4(), p);
}

std::vector<int> slots_of(const ProgHarness& dp, int flows) {
  std::vector<int> out;
  for (int f = 0; f < flows; f++)
    out.push_back(dp.egress_slot(kPeerId, build(tcp(AF_INET, static_cast<uint16_t>(30000 + f)))));
  return out;
}

}  // namespace

TEST_CASE("a link's removal moves only its own flows; its return moves them back") {
  ProgHarness dp;
  ml_peer p = make_peer(kPeerId, AF_INET, 3);
  std::vector<mlink::linkset::Member> m{
      {0, 0x10, 1, false, true}, {1, 0x11, 1, false, true}, {2, 0x12, 1, false, true}};
  write_table(dp, p, m);
  auto before = slots_of(dp, 300);

  m[1].usable = false;
  write_table(dp, p, m);
  auto during = slots_of(dp, 300);
  int moved_to[3] = {};
  for (size_t f = 0; f < before.size(); f++) {
    CAPTURE(f);
    CHECK(during[f] != 1);
    if (before[f] != 1)
      CHECK(during[f] == before[f]);
    else
      moved_to[during[f]]++;
  }
  CHECK(moved_to[0] > 0);
  CHECK(moved_to[2] > 0);

  m[1].usable = true;
  write_table(dp, p, m);
  CHECK(slots_of(dp, 300) == before);
}
