// packets.h - crafted packets and a BPF_PROG_TEST_RUN harness for the mlink datapath, shared by
// the BPF unit tests (tests/bpf) and the per-packet benchmark (bench/bpf_cost.cpp).
//
// Test-run presents every SCHED_CLS packet as an Ethernet frame, whatever device ctx.ifindex
// names (a tun included): the kernel runs eth_type_trans on data_in, skb->protocol comes from
// bytes 12-13 and skb->data points at the 14-byte L2 header. So the datapath is loaded with
// ml_l2_len = 14 here (production: 0 on the tun), and packets are built with an Ethernet header
// unless PacketSpec::eth is false. The "l2-less" production path is covered separately with
// packets whose IP header doubles as an Ethernet header (see l2less_* below).
#pragma once

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mlink_abi.h"

struct mlink_bpf;         // mlink.skel.h
struct ml_departure_bpf;  // ml_departure.skel.h
struct bpf_map;

namespace mlink::bpftest {

inline constexpr uint32_t kEthLen = 14;
inline constexpr std::array<uint8_t, 6> kHostMac{};  // test-run's device (lo): PACKET_HOST

// ---- addresses ----------------------------------------------------------------------------

struct Ip {
  uint8_t family = AF_INET;
  std::array<uint8_t, 16> bytes{};  // IPv4 in bytes[0..3]

  // Parses dotted quad or IPv6 text; throws std::invalid_argument on junk.
  static Ip parse(std::string_view text);
  size_t size() const { return family == AF_INET ? 4 : 16; }
  ml_addr key() const;  // ml_peers / ml_locals key
};

// The addresses the tests use: ML addresses of this host and of one peer, and an address that
// is no peer's.
Ip local4();
Ip peer4();
Ip stranger4();
Ip local6();
Ip peer6();
Ip stranger6();

// ---- packet builder -----------------------------------------------------------------------

struct Frag {
  uint32_t id = 0;      // IPv4: 16 bits used
  uint16_t offset = 0;  // byte offset of this fragment's data, a multiple of 8
  bool more = false;    // MF / M flag
};

struct PacketSpec {
  Ip src;
  Ip dst;
  uint8_t proto = IPPROTO_TCP;  // TCP, UDP, ICMP (v4) or ICMPV6 (v6): the L4 header written
  uint16_t sport = 0;           // TCP/UDP ports; ICMP echo id/sequence
  uint16_t dport = 0;
  size_t payload = 0;        // bytes after the L4 header (non-first fragment: all its data)
  bool eth = true;           // prepend an Ethernet header (test-run needs one)
  std::optional<Frag> frag;  // IPv4 fragment / IPv6 Fragment extension header
  uint8_t ttl = 64;          // TTL / hop limit
  // Ethernet destination. Test-run runs eth_type_trans against the loopback device, whose
  // address is all zeros: kHostMac makes skb->pkt_type PACKET_HOST, the default OTHERHOST.
  std::array<uint8_t, 6> eth_dst = {0x02, 0, 0, 0, 0, 0x02};
  size_t ip_options = 0;  // IPv4 option bytes (NOPs), a multiple of 4, at most 40
  bool udp_csum = false;  // compute the UDP checksum (otherwise 0)

  PacketSpec reply() const;  // addresses and ports swapped
};

// Serialises spec. Checksums are not computed (the datapath never reads them), except the IPv4
// header checksum, which is cheap and makes captures readable, and the UDP checksum when
// spec.udp_csum asks for it.
std::vector<uint8_t> build(const PacketSpec& spec);

// An Ethernet ARP request (who-has peer4 tell local4).
std::vector<uint8_t> build_arp();

// The fragments of one datagram `spec`: first (offset 0, MF, carries the L4 header), `count - 2`
// middle ones and the last (offset > 0, no MF). count >= 2.
std::vector<PacketSpec> fragments(const PacketSpec& spec, uint32_t id, int count);

// TCP/UDP/ICMP from the local to the peer address of `family`.
PacketSpec tcp(uint8_t family, uint16_t sport = 40000, uint16_t dport = 5201);
PacketSpec udp(uint8_t family, uint16_t sport = 40000, uint16_t dport = 53);
PacketSpec icmp(uint8_t family);  // echo request: ICMP for v4, ICMPv6 for v6

// A BFD echo as the link peer X sends it to us (Y) over one link (RFC 5881 §4): from X's link
// address 10.0.0.2 / fd00::2 to ours, 10.0.0.1 / fd00::1, UDP 49152 -> 3785, TTL 255, 32 bytes
// of payload, valid UDP checksum, Ethernet destination our (test-run's) MAC.
PacketSpec bfd_echo(uint8_t family);

// The fixture table: IPv4 and IPv6 x TCP, UDP, ICMP to the peer.
struct Fixture {
  std::string name;
  PacketSpec spec;
};
std::vector<Fixture> unicast_fixtures();

// The benchmark's packet: a 64-byte Ethernet frame carrying IPv4 + TCP to peer4.
PacketSpec bench_tcp4_64();

// An Ethernet-less IPv4 packet whose first 14 bytes also read as an Ethernet header with
// EtherType IPv4 (saddr 8.0.x.y puts 0x0800 in bytes 12-13), so test-run sets skb->protocol
// = ETH_P_IP and a program with ml_l2_len = 0 parses it exactly as on the tun. Same for IPv6
// (saddr bytes 4-5 = 0x86dd). Lets the tests take the production path, bpf_skb_change_head
// included.
PacketSpec l2less_tcp(uint8_t family, uint16_t sport = 40000);

// ---- reference model of the l34 hash ------------------------------------------------------

// What bpf/lib/parse.h + hash.h compute for spec (ml_hash_l34): the test oracle for bucket
// choice. Fragments and portless protocols hash with ports 0.
uint32_t l34_hash(const PacketSpec& spec);
inline uint32_t l34_bucket(const PacketSpec& spec) {
  return l34_hash(spec) & (ML_BUCKETS - 1);
}

// ---- peers --------------------------------------------------------------------------------

// A peer with `nslots` links, all UP, next hops of `nh_family` (10.<i>.0.2 / fd00:<i>::2,
// ifindex 100 + i); every bucket ML_SLOT_NONE until filled.
ml_peer make_peer(uint32_t peer_id, uint8_t nh_family, int nslots, uint8_t policy = ML_HASH_L34);
// All buckets to one slot.
void fill_buckets(ml_peer& peer, uint8_t slot);
// Bucket b to slot b % nslots.
void spread_buckets(ml_peer& peer, int nslots);

// ---- the loaded datapath ------------------------------------------------------------------

struct Rodata {
  uint32_t l2_len = kEthLen;  // see the top of this file
  uint32_t ifindex = 1;       // ingress redirect target; test-run never really redirects
};

struct RunResult {
  int err = 0;               // bpf_prog_test_run_opts: 0 or -errno
  uint32_t retval = 0;       // TC_ACT_*
  uint32_t duration_ns = 0;  // mean per repetition, as measured by the kernel
  std::vector<uint8_t> out;  // the packet after the program
  ml_decision decision{};    // __sk_buff->cb after the program (ml_egress: its decision)
};

// One BPF_PROG_TEST_RUN of a SCHED_CLS program.
RunResult test_run(int prog_fd, std::span<const uint8_t> pkt, uint32_t repeat = 1);

// Sum over all possible CPUs of a per-CPU array entry of struct ml_counter.
ml_counter percpu_sum(const bpf_map* map, uint32_t key);

// The mlink skeleton, opened with `ro` and loaded, whose programs it runs by BPF_PROG_TEST_RUN
// and whose maps it fills and reads; destroyed with the object. Throws std::runtime_error when it
// cannot load. (Not the agent's mlink::datapath::Datapath: nothing here attaches to a device.)
class ProgHarness {
 public:
  explicit ProgHarness(Rodata ro = {});
  ~ProgHarness();
  ProgHarness(const ProgHarness&) = delete;
  ProgHarness& operator=(const ProgHarness&) = delete;

  mlink_bpf* skel() const { return skel_; }
  int egress_fd() const;
  int ingress_fd() const;

  // Map writes; throw std::runtime_error on failure.
  void put_peer(const Ip& addr, const ml_peer& peer);
  void put_local(const Ip& addr);
  // A BFD session of link `ifindex` (test-run's device is lo, 1): (local, remote) in
  // ml_bfd_peers. bfd_echo()'s addresses by default, both families.
  // slot: the value (group echo: the session's ml_echo_seen entry + 1).
  void put_bfd_peer(const Ip& local, const Ip& remote, uint32_t ifindex = 1, uint32_t slot = 0);
  void put_echo_peers();
  void del_bfd_peer(const Ip& local, const Ip& remote, uint32_t ifindex = 1);

  RunResult egress(std::span<const uint8_t> pkt, uint32_t repeat = 1) const;
  RunResult ingress(std::span<const uint8_t> pkt, uint32_t repeat = 1) const;
  // The socket filters: retval 0 refuses the datagram, its length keeps it.
  RunResult sock_bfd(std::span<const uint8_t> pkt) const;
  RunResult sock_topo(std::span<const uint8_t> pkt) const;

  ml_counter slot_counter(uint32_t peer_id, uint32_t slot) const;
  std::array<ml_counter, ML_MAX_SLOTS> slot_counters(uint32_t peer_id) const;
  ml_peer_stats peer_stats(uint32_t peer_id) const;  // summed over CPUs
  ml_counter drop_counter(uint32_t reason) const;
  ml_counter ingress_counter(uint32_t which) const;

  // Runs pkt through ml_egress and returns the slot of peer_id whose counter moved, or -1
  // when none did. Throws if the run fails or more than one slot moved.
  int egress_slot(uint32_t peer_id, std::span<const uint8_t> pkt) const;

 private:
  mlink_bpf* skel_ = nullptr;
};

// ml_departure (bpf/testing/departure.bpf.c) in front of another SCHED_CLS program: runs it
// on a packet stamped with a CLOCK_MONOTONIC departure time, as TCP stamps every segment
// (test-run alone cannot set the stamp's type). Destroyed with the object.
class DepartureRun {
 public:
  explicit DepartureRun(int next_prog_fd);
  ~DepartureRun();
  DepartureRun(const DepartureRun&) = delete;
  DepartureRun& operator=(const DepartureRun&) = delete;

  // departure_ns: not 0 (a stamp of 0 means none).
  RunResult run(std::span<const uint8_t> pkt, uint64_t departure_ns, uint32_t repeat = 1) const;

 private:
  ml_departure_bpf* skel_ = nullptr;
};

}  // namespace mlink::bpftest
