#include "packets.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "datapath/bpf_datapath.h"
#include "lib/jhash.h"  // the mixing function itself is shared; the l34 recipe is the oracle
#include "mlink.skel.h"
#include "proto/common/bytes.h"

namespace mlink::bpftest {
namespace {

constexpr uint32_t kFragData = 64;  // data bytes per fragment (a multiple of 8)

using proto::ByteWriter;

bool first_fragment(const PacketSpec& s) {
  return !s.frag || s.frag->offset == 0;
}

size_t l4_header_len(uint8_t proto) {
  return proto == IPPROTO_TCP ? 20 : 8;
}

// Bytes after the IP header(s): the L4 header (unfragmented or first fragment) and payload.
size_t l4_len(const PacketSpec& s) {
  return (first_fragment(s) ? l4_header_len(s.proto) : 0) + s.payload;
}

void write_eth(ByteWriter& w, uint16_t ethertype,
               const std::array<uint8_t, 6>& dst = {0x02, 0, 0, 0, 0, 0x02}) {
  const std::array<uint8_t, 6> src = {0x02, 0, 0, 0, 0, 0x01};
  w.bytes(dst);
  w.bytes(src);
  w.u16(ethertype);
}

// One's complement sum of big-endian 16-bit words, not folded.
uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  return sum;
}

uint16_t fold_not(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint16_t ipv4_checksum(const uint8_t* hdr, size_t len) {
  return fold_not(sum16(hdr, len));
}

void write_ipv4(ByteWriter& w, const PacketSpec& s) {
  if (s.ip_options % 4 != 0 || s.ip_options > 40)
    throw std::invalid_argument("IPv4 options: a multiple of 4, at most 40 bytes");
  size_t start = w.size();
  size_t hlen = 20 + s.ip_options;
  uint16_t frag_off = 0;
  if (s.frag) frag_off = static_cast<uint16_t>((s.frag->offset / 8) | (s.frag->more ? 0x2000 : 0));
  w.u8(static_cast<uint8_t>(0x40 | hlen / 4));
  w.u8(0);
  w.u16(static_cast<uint16_t>(hlen + l4_len(s)));
  w.u16(static_cast<uint16_t>(s.frag ? s.frag->id : 0));
  w.u16(frag_off);
  w.u8(s.ttl);
  w.u8(s.proto);
  w.u16(0);
  w.bytes(std::span(s.src.bytes).first(4));
  w.bytes(std::span(s.dst.bytes).first(4));
  for (size_t i = 0; i < s.ip_options; i++) w.u8(1);  // NOP
  w.put_u16_at(start + 10, ipv4_checksum(&w.view()[start], hlen));
}

void write_ipv6(ByteWriter& w, const PacketSpec& s) {
  w.u32(0x60000000);
  w.u16(static_cast<uint16_t>(l4_len(s) + (s.frag ? 8 : 0)));
  w.u8(s.frag ? uint8_t{IPPROTO_FRAGMENT} : s.proto);
  w.u8(s.ttl);
  w.bytes(s.src.bytes);
  w.bytes(s.dst.bytes);
  if (s.frag) {
    w.u8(s.proto);
    w.u8(0);
    w.u16(static_cast<uint16_t>((s.frag->offset & 0xfff8) | (s.frag->more ? 1 : 0)));
    w.u32(s.frag->id);
  }
}

void write_l4(ByteWriter& w, const PacketSpec& s) {
  switch (s.proto) {
    case IPPROTO_TCP:
      w.u16(s.sport);
      w.u16(s.dport);
      w.u32(1);      // seq
      w.u32(0);      // ack
      w.u8(5 << 4);  // data offset
      w.u8(0x18);    // PSH|ACK
      w.u16(65535);  // window
      w.u32(0);      // checksum, urgent
      break;
    case IPPROTO_UDP:
      w.u16(s.sport);
      w.u16(s.dport);
      w.u16(static_cast<uint16_t>(8 + s.payload));
      w.u16(0);
      break;
    default:  // ICMP / ICMPv6 echo request
      w.u8(s.src.family == AF_INET ? 8 : 128);
      w.u8(0);
      w.u16(0);
      w.u16(s.sport);
      w.u16(s.dport);
      break;
  }
}

// The datapath loads addresses as native-endian words (v6: xor of the four words).
uint32_t addr_digest(const Ip& ip) {
  uint32_t words[4];
  std::memcpy(words, ip.bytes.data(), sizeof(words));
  return ip.family == AF_INET ? words[0] : words[0] ^ words[1] ^ words[2] ^ words[3];
}

void set_nh(ml_slot& s, uint8_t family, int i) {
  s.nh_family = family;
  if (family == AF_INET) {
    s.nh[0] = 10;
    s.nh[1] = static_cast<uint8_t>(i);
    s.nh[3] = 2;
  } else {
    s.nh[0] = 0xfd;
    s.nh[3] = static_cast<uint8_t>(i);
    s.nh[15] = 2;
  }
}

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err < 0 ? -err : err));
}

}  // namespace

// ---- addresses ----------------------------------------------------------------------------

Ip Ip::parse(std::string_view text) {
  std::string s(text);
  Ip ip;
  if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) return ip;
  ip.family = AF_INET6;
  if (inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) == 1) return ip;
  throw std::invalid_argument("not an IP address: " + s);
}

ml_addr Ip::key() const {
  ml_addr k{};
  k.family = family;
  std::memcpy(k.addr, bytes.data(), size());
  return k;
}

Ip local4() {
  return Ip::parse("10.88.0.1");
}
Ip peer4() {
  return Ip::parse("10.88.0.2");
}
Ip stranger4() {
  return Ip::parse("192.0.2.9");
}
Ip local6() {
  return Ip::parse("fd88::1");
}
Ip peer6() {
  return Ip::parse("fd88::2");
}
Ip stranger6() {
  return Ip::parse("2001:db8::9");
}

// ---- packet builder -----------------------------------------------------------------------

PacketSpec PacketSpec::reply() const {
  PacketSpec r = *this;
  std::swap(r.src, r.dst);
  std::swap(r.sport, r.dport);
  return r;
}

std::vector<uint8_t> build(const PacketSpec& s) {
  ByteWriter w;
  bool v4 = s.src.family == AF_INET;
  if (s.eth) write_eth(w, v4 ? ETH_P_IP : ETH_P_IPV6, s.eth_dst);
  if (v4)
    write_ipv4(w, s);
  else
    write_ipv6(w, s);
  size_t l4 = w.size();
  if (first_fragment(s)) write_l4(w, s);
  for (size_t i = 0; i < s.payload; i++) w.u8(static_cast<uint8_t>(i));
  if (s.udp_csum && s.proto == IPPROTO_UDP && !s.frag) {
    // Pseudo-header (addresses, protocol, UDP length) + UDP header + payload.
    size_t n = w.size() - l4;
    uint32_t sum = sum16(s.src.bytes.data(), s.src.size());
    sum = sum16(s.dst.bytes.data(), s.dst.size(), sum);
    sum += IPPROTO_UDP + static_cast<uint32_t>(n);
    uint16_t c = fold_not(sum16(&w.view()[l4], n, sum));
    w.put_u16_at(l4 + 6, c == 0 ? 0xffff : c);
  }
  return std::move(w).take();
}

std::vector<uint8_t> build_arp() {
  const Ip sender = local4(), target = peer4();
  ByteWriter w;
  write_eth(w, ETH_P_ARP);
  w.u16(1);  // Ethernet
  w.u16(ETH_P_IP);
  w.u8(6);
  w.u8(4);
  w.u16(1);  // request
  w.zeros(6);
  w.bytes(std::span(sender.bytes).first(4));
  w.zeros(6);
  w.bytes(std::span(target.bytes).first(4));
  w.zeros(18);  // pad to the 60-byte minimum
  return std::move(w).take();
}

std::vector<PacketSpec> fragments(const PacketSpec& spec, uint32_t id, int count) {
  if (count < 2) throw std::invalid_argument("a fragmented datagram has >= 2 fragments");
  std::vector<PacketSpec> out;
  for (int i = 0; i < count; i++) {
    PacketSpec f = spec;
    bool last = i == count - 1;
    f.frag = Frag{id, static_cast<uint16_t>(i * kFragData), !last};
    if (i == 0)
      f.payload = kFragData - l4_header_len(spec.proto);
    else
      f.payload = last ? 24 : kFragData;
    out.push_back(f);
  }
  return out;
}

PacketSpec tcp(uint8_t family, uint16_t sport, uint16_t dport) {
  bool v4 = family == AF_INET;
  return PacketSpec{.src = v4 ? local4() : local6(),
                    .dst = v4 ? peer4() : peer6(),
                    .proto = IPPROTO_TCP,
                    .sport = sport,
                    .dport = dport,
                    .payload = 32};
}

PacketSpec udp(uint8_t family, uint16_t sport, uint16_t dport) {
  PacketSpec s = tcp(family, sport, dport);
  s.proto = IPPROTO_UDP;
  return s;
}

PacketSpec icmp(uint8_t family) {
  PacketSpec s = tcp(family, 0x1234, 1);  // echo id, sequence
  s.proto = family == AF_INET ? uint8_t{IPPROTO_ICMP} : uint8_t{IPPROTO_ICMPV6};
  return s;
}

PacketSpec bfd_echo(uint8_t family) {
  bool v4 = family == AF_INET;
  return PacketSpec{.src = Ip::parse(v4 ? "10.0.0.2" : "fd00::2"),
                    .dst = Ip::parse(v4 ? "10.0.0.1" : "fd00::1"),
                    .proto = IPPROTO_UDP,
                    .sport = 49152,
                    .dport = ML_BFD_ECHO_PORT,
                    .payload = 32,
                    .ttl = 255,
                    .eth_dst = kHostMac,
                    .udp_csum = true};
}

std::vector<Fixture> unicast_fixtures() {
  std::vector<Fixture> out;
  for (uint8_t family : {AF_INET, AF_INET6}) {
    std::string v = family == AF_INET ? "ipv4" : "ipv6";
    out.push_back({v + "/tcp", tcp(family)});
    out.push_back({v + "/udp", udp(family)});
    out.push_back({v + "/icmp", icmp(family)});
  }
  return out;
}

PacketSpec bench_tcp4_64() {
  PacketSpec s = tcp(AF_INET);
  s.payload = 64 - kEthLen - 20 - 20;
  return s;
}

PacketSpec l2less_tcp(uint8_t family, uint16_t sport) {
  PacketSpec s = tcp(family, sport);
  s.eth = false;
  s.src = Ip::parse(family == AF_INET ? "8.0.0.1" : "2001:db8:86dd::1");
  return s;
}

// ---- reference model ----------------------------------------------------------------------

uint32_t l34_hash(const PacketSpec& s) {
  uint32_t sa = addr_digest(s.src);
  uint32_t da = addr_digest(s.dst);
  bool ports = !s.frag && (s.proto == IPPROTO_TCP || s.proto == IPPROTO_UDP);
  uint16_t sp = ports ? s.sport : 0;
  uint16_t dp = ports ? s.dport : 0;
  uint32_t lo = sa < da ? sa : da;
  uint32_t hi = sa ^ da ^ lo;
  uint16_t plo = sp < dp ? sp : dp;
  uint16_t phi = static_cast<uint16_t>(sp ^ dp ^ plo);
  return ml_jhash_3words(lo, hi, (static_cast<uint32_t>(plo) << 16) | phi, ML_HASH_SEED + s.proto);
}

// ---- peers --------------------------------------------------------------------------------

ml_peer make_peer(uint32_t peer_id, uint8_t nh_family, int nslots, uint8_t policy) {
  ml_peer p{};
  p.peer_id = peer_id;
  p.hash_policy = policy;
  p.nslots = static_cast<uint8_t>(nslots);
  for (int i = 0; i < nslots; i++) {
    p.slots[i].ifindex = static_cast<uint32_t>(100 + i);
    p.slots[i].state = ML_SLOT_UP;
    set_nh(p.slots[i], nh_family, i);
  }
  fill_buckets(p, ML_SLOT_NONE);
  return p;
}

void fill_buckets(ml_peer& peer, uint8_t slot) {
  std::memset(peer.buckets, slot, ML_BUCKETS);
}

void spread_buckets(ml_peer& peer, int nslots) {
  for (int b = 0; b < ML_BUCKETS; b++) peer.buckets[b] = static_cast<uint8_t>(b % nslots);
}

// ---- harness ------------------------------------------------------------------------------

RunResult test_run(int prog_fd, std::span<const uint8_t> pkt, uint32_t repeat) {
  RunResult r;
  r.out.resize(pkt.size() + 256);  // room for bpf_skb_change_head
  __sk_buff ctx_in{}, ctx_out{};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(), .data_out = r.out.data(),
              .data_size_in = static_cast<__u32>(pkt.size()),
              .data_size_out = static_cast<__u32>(r.out.size()), .ctx_in = &ctx_in,
              .ctx_out = &ctx_out, .ctx_size_in = sizeof(ctx_in), .ctx_size_out = sizeof(ctx_out),
              .repeat = static_cast<int>(repeat));
  r.err = bpf_prog_test_run_opts(prog_fd, &opts);
  static_assert(sizeof(r.decision) <= sizeof(ctx_out.cb));
  std::memcpy(&r.decision, ctx_out.cb, sizeof(r.decision));
  r.retval = opts.retval;
  r.duration_ns = opts.duration;
  r.out.resize(r.err ? 0 : opts.data_size_out);
  return r;
}

ml_counter percpu_sum(const bpf_map* map, uint32_t key) {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) fail("libbpf_num_possible_cpus", ncpu);
  std::vector<ml_counter> per_cpu(static_cast<size_t>(ncpu));
  if (bpf_map_lookup_elem(bpf_map__fd(map), &key, per_cpu.data()) != 0)
    fail(std::string("lookup in ") + bpf_map__name(map), errno);
  ml_counter sum{};
  for (const ml_counter& c : per_cpu) {
    sum.packets += c.packets;
    sum.bytes += c.bytes;
  }
  return sum;
}

ProgHarness::ProgHarness(Rodata ro) {
  skel_ = mlink_bpf::open();
  if (!skel_) fail("open mlink skeleton", errno);
  skel_->rodata->ml_l2_len = ro.l2_len;
  skel_->rodata->ml_ifindex = ro.ifindex;
  if (int err = mlink_bpf::load(skel_); err) {
    mlink_bpf::destroy(skel_);
    fail("load mlink skeleton", err);
  }
}

ProgHarness::~ProgHarness() {
  mlink_bpf::destroy(skel_);
}

int ProgHarness::egress_fd() const {
  return bpf_program__fd(skel_->progs.ml_egress);
}
int ProgHarness::ingress_fd() const {
  return bpf_program__fd(skel_->progs.ml_ingress);
}

void ProgHarness::put_peer(const Ip& addr, const ml_peer& peer) {
  ml_addr key = addr.key();
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ml_peers), &key, &peer, BPF_ANY) != 0)
    fail("update ml_peers", errno);
}

void ProgHarness::put_local(const Ip& addr) {
  ml_addr key = addr.key();
  uint32_t one = 1;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ml_locals), &key, &one, BPF_ANY) != 0)
    fail("update ml_locals", errno);
}

namespace {
ml_bfd_key bfd_key(const Ip& local, const Ip& remote, uint32_t ifindex) {
  ml_bfd_key key{};
  key.ifindex = ifindex;
  key.family = local.family;
  std::memcpy(key.local, local.bytes.data(), sizeof(key.local));
  std::memcpy(key.remote, remote.bytes.data(), sizeof(key.remote));
  return key;
}
}  // namespace

void ProgHarness::del_bfd_peer(const Ip& local, const Ip& remote, uint32_t ifindex) {
  ml_bfd_key key = bfd_key(local, remote, ifindex);
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.ml_bfd_peers), &key) != 0)
    fail("delete from ml_bfd_peers", errno);
}

void ProgHarness::put_bfd_peer(const Ip& local, const Ip& remote, uint32_t ifindex, uint32_t slot) {
  ml_bfd_key key = bfd_key(local, remote, ifindex);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ml_bfd_peers), &key, &slot, BPF_ANY) != 0)
    fail("update ml_bfd_peers", errno);
}

void ProgHarness::put_echo_peers() {
  for (uint8_t family : {AF_INET, AF_INET6}) {
    PacketSpec e = bfd_echo(family);
    put_bfd_peer(e.dst, e.src);
  }
}

RunResult ProgHarness::sock_bfd(std::span<const uint8_t> pkt) const {
  return test_run(bpf_program__fd(skel_->progs.ml_sock_bfd), pkt);
}

RunResult ProgHarness::sock_topo(std::span<const uint8_t> pkt) const {
  return test_run(bpf_program__fd(skel_->progs.ml_sock_topo), pkt);
}

RunResult ProgHarness::egress(std::span<const uint8_t> pkt, uint32_t repeat) const {
  return test_run(egress_fd(), pkt, repeat);
}

RunResult ProgHarness::ingress(std::span<const uint8_t> pkt, uint32_t repeat) const {
  return test_run(ingress_fd(), pkt, repeat);
}

ml_peer_stats ProgHarness::peer_stats(uint32_t peer_id) const {
  auto st = mlink::datapath::peer_stats_sum(bpf_map__fd(skel_->maps.ml_peer_stats), peer_id);
  if (!st) throw std::runtime_error(st.error().message);
  return *st;
}

ml_counter ProgHarness::slot_counter(uint32_t peer_id, uint32_t slot) const {
  return peer_stats(peer_id).slots[slot];
}

std::array<ml_counter, ML_MAX_SLOTS> ProgHarness::slot_counters(uint32_t peer_id) const {
  std::array<ml_counter, ML_MAX_SLOTS> out{};
  for (uint32_t s = 0; s < ML_MAX_SLOTS; s++) out[s] = slot_counter(peer_id, s);
  return out;
}

ml_counter ProgHarness::drop_counter(uint32_t reason) const {
  return percpu_sum(skel_->maps.ml_drops, reason);
}

ml_counter ProgHarness::ingress_counter(uint32_t which) const {
  return percpu_sum(skel_->maps.ml_ingress_stats, which);
}

int ProgHarness::egress_slot(uint32_t peer_id, std::span<const uint8_t> pkt) const {
  auto before = slot_counters(peer_id);
  RunResult r = egress(pkt);
  if (r.err) fail("test run of ml_egress", r.err);
  auto after = slot_counters(peer_id);
  int moved = -1;
  for (int s = 0; s < ML_MAX_SLOTS; s++) {
    if (after[s].packets == before[s].packets) continue;
    if (moved >= 0) throw std::runtime_error("more than one slot counter moved");
    moved = s;
  }
  return moved;
}

}  // namespace mlink::bpftest
