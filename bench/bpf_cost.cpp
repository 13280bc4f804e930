// bench_bpf_cost - per-packet cost of the datapath programs, measured with BPF_PROG_TEST_RUN
// (repeat = 10^6, the kernel's mean per repetition) on a 64-byte IPv4 TCP frame:
//
//   empty          ml_empty, the cost of running any TC program (baseline)
//   egress_peer    ml_egress to a peer, l34 hash, redirect path
//   egress_pass    ml_egress to a non-peer (parse + map miss, TC_ACT_OK)
//   egress_socket  ml_egress to a peer with the socket hash policy
//   egress_flowlet ml_egress to a flowlet peer (socket_queue_limit on, as by default), the
//                  flowlet's next packet, clocked by bpf_ktime_get_ns() (a packet with no
//                  departure time: UDP, forwarded)
//   egress_flowlet_new  the same, every packet a new flowlet (gap 0)
//   tcp_*          the packet stamped with a departure time first, as TCP stamps every
//                  segment (bpf/testing/departure.bpf.c, then a tail call): tcp_empty is
//                  their baseline, and flowlet mode reads the stamp instead of the clock
//
// Cases are interleaved over 7 rounds and the median taken, so a noisy moment on a small VM
// hits every case alike. Test-run presents an Ethernet frame, so the datapath is loaded with
// ml_l2_len = 14 (tests/bpf/packets.h): the production-only bpf_skb_change_head is not in
// these figures (repeating it on one skb would grow the head 10^6 times). The skb keeps its
// hash across repetitions, so egress_socket measures a cached skb hash, as for local TCP.
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bpf/packets.h"
#include "ml_empty.skel.h"

using namespace mlink::bpftest;

namespace {

constexpr uint32_t kRepeat = 1'000'000;
constexpr int kRounds = 7;
constexpr uint64_t kDepartureNs = 1'000'000'000;

struct Case {
  std::string name;
  int prog_fd;
  uint32_t expect;  // TC_ACT_*: a case that takes the wrong path measures the wrong thing
  std::vector<uint8_t> pkt;
  const DepartureRun* tcp = nullptr;  // stamp a departure time first
  std::string baseline = "empty";     // "- empty" is net of this case
  std::vector<uint32_t> ns;

  uint32_t median() const {
    std::vector<uint32_t> v = ns;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
};

// Loads ml_empty; destroyed with the object.
class EmptyProg {
 public:
  EmptyProg() : skel_(ml_empty_bpf::open_and_load()) {
    if (!skel_) throw std::runtime_error("load ml_empty skeleton");
  }
  ~EmptyProg() { ml_empty_bpf::destroy(skel_); }
  EmptyProg(const EmptyProg&) = delete;
  EmptyProg& operator=(const EmptyProg&) = delete;
  int fd() const { return bpf_program__fd(skel_->progs.ml_empty); }

 private:
  ml_empty_bpf* skel_;
};

ml_peer spread_peer(uint32_t id, uint8_t policy) {
  ml_peer p = make_peer(id, AF_INET, 3, policy);
  spread_buckets(p, 3);
  return p;
}

void run_round(std::vector<Case>& cases) {
  for (Case& c : cases) {
    RunResult r =
        c.tcp ? c.tcp->run(c.pkt, kDepartureNs, kRepeat) : test_run(c.prog_fd, c.pkt, kRepeat);
    if (r.err) throw std::runtime_error(c.name + ": test run failed: " + std::to_string(r.err));
    if (r.retval != c.expect)
      throw std::runtime_error(c.name + ": returned " + std::to_string(r.retval));
    c.ns.push_back(r.duration_ns);
  }
}

void report(const std::vector<Case>& cases) {
  std::printf("%-19s %8s %10s %8s\n", "case", "ns/pkt", "- empty", "x empty");
  for (const Case& c : cases) {
    auto base = std::find_if(cases.begin(), cases.end(),
                             [&](const Case& b) { return b.name == c.baseline; });
    uint32_t empty = base->median();
    uint32_t m = c.median();
    std::printf("%-19s %8u %10d %8.2f\n", c.name.c_str(), m,
                static_cast<int>(m) - static_cast<int>(empty), empty ? double(m) / empty : 0.0);
  }
  for (const Case& c : cases)
    std::printf("bench_bpf_cost case=%s ns=%u\n", c.name.c_str(), c.median());
}

int run() {
  EmptyProg empty;
  ProgHarness dp;  // l2_len = 14: see above
  dp.put_peer(peer4(), spread_peer(1, ML_HASH_L34));
  PacketSpec socket_spec = bench_tcp4_64();
  socket_spec.dst = Ip::parse("10.88.0.3");
  dp.put_peer(socket_spec.dst, spread_peer(2, ML_HASH_SOCKET));
  PacketSpec pass_spec = bench_tcp4_64();
  pass_spec.dst = stranger4();
  // Flowlet mode: packets of one flow closer than the gap (the common path: a lookup, a clock
  // read, a store), and a new flowlet on every packet (gap 0: a random bucket too).
  PacketSpec flowlet_spec = bench_tcp4_64(), new_flowlet_spec = bench_tcp4_64();
  flowlet_spec.dst = Ip::parse("10.88.0.4");
  new_flowlet_spec.dst = Ip::parse("10.88.0.5");
  // As the agent writes a flowlet peer by default: socket_queue_limit on, so the socket test
  // runs too (test-run's skb has a dummy socket that is not TCP: the helper call, no read).
  for (auto [spec, id, gap] : {std::tuple{&flowlet_spec, 3u, 500u}, {&new_flowlet_spec, 4u, 0u}}) {
    ml_peer p = spread_peer(id, ML_HASH_L34);
    p.spread = ML_SPREAD_FLOWLET;
    p.flowlet_gap_us = gap;
    p.socket_queue_limit = 65536;
    dp.put_peer(spec->dst, p);
  }

  DepartureRun tcp_empty(empty.fd()), tcp_egress(dp.egress_fd());
  auto peer_pkt = build(bench_tcp4_64());
  std::vector<Case> cases = {
      {"empty", empty.fd(), TC_ACT_OK, peer_pkt},
      {"egress_peer", dp.egress_fd(), TC_ACT_REDIRECT, peer_pkt},
      {"egress_pass", dp.egress_fd(), TC_ACT_OK, build(pass_spec)},
      {"egress_socket", dp.egress_fd(), TC_ACT_REDIRECT, build(socket_spec)},
      {"egress_flowlet", dp.egress_fd(), TC_ACT_REDIRECT, build(flowlet_spec)},
      {"egress_flowlet_new", dp.egress_fd(), TC_ACT_REDIRECT, build(new_flowlet_spec)},
      {"tcp_empty", -1, TC_ACT_OK, peer_pkt, &tcp_empty, "tcp_empty"},
      {"tcp_egress_peer", -1, TC_ACT_REDIRECT, peer_pkt, &tcp_egress, "tcp_empty"},
      {"tcp_egress_flowlet", -1, TC_ACT_REDIRECT, build(flowlet_spec), &tcp_egress, "tcp_empty"},
  };
  std::printf("BPF_PROG_TEST_RUN, %zu-byte IPv4 TCP frame, repeat %u, median of %d rounds\n",
              peer_pkt.size(), kRepeat, kRounds);
  for (int round = 0; round < kRounds; round++) run_round(cases);
  report(cases);
  return 0;
}

}  // namespace

int main() {
  if (geteuid() != 0) {
    std::printf("bench_bpf_cost: skipped: BPF_PROG_TEST_RUN needs root\n");
    return 0;
  }
  try {
    return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_bpf_cost: %s\n", e.what());
    return 1;
  }
}
