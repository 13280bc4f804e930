// ml_egress, l34 policy: the hash is symmetric, so a flow A->B and its reply B->A pick the same
// bucket and, with the same table at both ends, the same link.
//
// A slot counter only shows the slot, and 8 slots cannot tell 256 buckets apart. So the bucket
// is read bit by bit: in round k every peer gets the table bucket b -> slot (b >> k) & 1, and
// the slot a packet lands on is bit k of its bucket. Eight rounds give the whole bucket.
#include <doctest/doctest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "bpf/packets.h"

using namespace mlink::bpftest;

namespace {

constexpr uint32_t kPeerId = 9;
constexpr int kFlowsPerFamily = 256;

struct Flow {
  PacketSpec fwd;
  uint32_t bucket_fwd = 0;  // as read back from the datapath
  uint32_t bucket_rev = 0;
};

Ip random_ip(uint8_t family, std::mt19937& rng) {
  auto n = [&] { return std::to_string(rng() % 250 + 1); };
  if (family == AF_INET) return Ip::parse("10.88." + n() + "." + n());
  return Ip::parse("fd88::" + n() + ":" + n());
}

std::vector<Flow> random_flows(std::mt19937& rng) {
  std::vector<Flow> flows;
  for (uint8_t family : {AF_INET, AF_INET6}) {
    for (int i = 0; i < kFlowsPerFamily; i++) {
      auto sport = static_cast<uint16_t>(rng()), dport = static_cast<uint16_t>(rng());
      PacketSpec s = i % 2 ? tcp(family, sport, dport) : udp(family, sport, dport);
      s.src = random_ip(family, rng);
      do s.dst = random_ip(family, rng);
      while (s.dst.bytes == s.src.bytes);
      flows.push_back({s});
    }
  }
  return flows;
}

// Both ends of every flow become peers with the round-k bit table (identical tables: the
// reply's destination is A).
void put_bit_tables(ProgHarness& dp, const std::vector<Flow>& flows, int k) {
  for (uint8_t family : {AF_INET, AF_INET6}) {
    ml_peer p = make_peer(kPeerId, family, 2);
    for (int b = 0; b < ML_BUCKETS; b++) p.buckets[b] = static_cast<uint8_t>((b >> k) & 1);
    for (const Flow& f : flows) {
      if (f.fwd.src.family != family) continue;
      dp.put_peer(f.fwd.src, p);
      dp.put_peer(f.fwd.dst, p);
    }
  }
}

uint32_t read_bit(const ProgHarness& dp, const PacketSpec& spec) {
  int slot = dp.egress_slot(kPeerId, build(spec));
  REQUIRE(slot >= 0);
  return static_cast<uint32_t>(slot);
}

}  // namespace

TEST_CASE("egress: l34 sends a flow and its reply through the same bucket") {
  ProgHarness dp;
  std::mt19937 rng(20240601);
  std::vector<Flow> flows = random_flows(rng);
  for (int k = 0; k < 8; k++) {
    put_bit_tables(dp, flows, k);
    for (Flow& f : flows) {
      f.bucket_fwd |= read_bit(dp, f.fwd) << k;
      f.bucket_rev |= read_bit(dp, f.fwd.reply()) << k;
    }
  }
  std::set<uint32_t> seen;
  for (const Flow& f : flows) {
    CAPTURE(f.fwd.sport);
    CAPTURE(f.fwd.dport);
    CHECK(f.bucket_fwd == f.bucket_rev);
    CHECK(f.bucket_fwd == l34_bucket(f.fwd));  // and it is the documented hash
    seen.insert(f.bucket_fwd);
  }
  // ~2/3 of 256 buckets are expected for 512 flows: the test did not just see one bucket.
  CHECK(seen.size() >= 128);
}
