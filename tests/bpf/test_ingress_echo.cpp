// ml_ingress reflects BFD echoes (RFC 5880 §6.4, RFC 5881 §4): a UDP datagram from a BFD peer of
// the link (ml_bfd_peers) to our address on it, port 3785, from a port other than 3785, TTL / hop
// limit 255, is sent back out the link (bpf_redirect_neigh: TC_ACT_REDIRECT) with addresses and
// ports swapped and nothing else changed. An echo from anyone else, or with another TTL, is
// dropped and counted (echo_refused); what only looks almost like one passes untouched.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <doctest/doctest.h>
#include <linux/if_ether.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "bpf/checksum_oracle.h"
#include "bpf/packets.h"
#include "ml_l2shape.skel.h"

using namespace mlink::bpftest;

namespace {

struct Fields {
  std::vector<uint8_t> src, dst;
  uint16_t sport, dport;
  uint8_t ttl;
};

Fields fields(const std::vector<uint8_t>& f) {
  bool v4 = (f[kEthLen] >> 4) == 4;
  size_t l3 = kEthLen, alen = v4 ? 4 : 16, a = l3 + (v4 ? 12 : 8);
  size_t l4 = v4 ? l3 + (f[l3] & 0xf) * 4u : l3 + 40;
  return Fields{{f.begin() + a, f.begin() + a + alen},
                {f.begin() + a + alen, f.begin() + a + 2 * alen},
                be16(f, l4),
                be16(f, l4 + 2),
                f[l3 + (v4 ? 8 : 7)]};
}

void check_reflected(ProgHarness& dp, const PacketSpec& spec) {
  auto pkt = build(spec);
  if (spec.src.family == AF_INET) REQUIRE(ipv4_header_ok(pkt));
  REQUIRE(udp_ok(pkt));
  RunResult r = dp.ingress(pkt);
  REQUIRE(r.err == 0);
  CHECK(r.retval == TC_ACT_REDIRECT);
  REQUIRE(r.out.size() == pkt.size());
  Fields in = fields(pkt), out = fields(r.out);
  CHECK(out.src == in.dst);
  CHECK(out.dst == in.src);
  CHECK(out.sport == in.dport);
  CHECK(out.dport == in.sport);
  CHECK(out.ttl == 255);
  if (spec.src.family == AF_INET) CHECK(ipv4_header_ok(r.out));
  CHECK(udp_ok(r.out));
  // Nothing else moved: the L2 header, the rest of the IP header, the payload.
  CHECK(r.out == build(spec.reply()));
}

void check_passed(ProgHarness& dp, const std::vector<uint8_t>& pkt) {
  RunResult r = dp.ingress(pkt);
  REQUIRE(r.err == 0);
  CHECK(r.retval == TC_ACT_OK);
  CHECK(r.out == pkt);
}

const char* name(uint8_t family) {
  return family == AF_INET ? "ipv4" : "ipv6";
}

}  // namespace

TEST_CASE("echo: the checksum oracle agrees with the builder and catches a flipped bit") {
  for (uint8_t family : {AF_INET, AF_INET6}) {
    auto pkt = build(bfd_echo(family));
    CHECK(udp_ok(pkt));
    pkt.back() ^= 1;
    CHECK_FALSE(udp_ok(pkt));
  }
  auto pkt = build(bfd_echo(AF_INET));
  CHECK(ipv4_header_ok(pkt));
  pkt[kEthLen + 8] = 254;  // TTL
  CHECK_FALSE(ipv4_header_ok(pkt));
}

TEST_CASE("echo: IPv4 and IPv6 echoes are reflected with valid checksums, and counted") {
  ProgHarness dp;
  dp.put_echo_peers();
  uint64_t bytes = 0;
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    check_reflected(dp, bfd_echo(family));
    bytes += build(bfd_echo(family)).size();
  }
  ml_counter c = dp.ingress_counter(ML_IN_ECHO_REFLECTED);
  CHECK(c.packets == 2);
  CHECK(c.bytes == bytes);
  CHECK(dp.ingress_counter(ML_IN_DELIVERED).packets == 0);
}

TEST_CASE("echo: IPv4 with options (IHL > 5) finds the ports after them") {
  ProgHarness dp;
  dp.put_echo_peers();
  for (size_t opts : {4u, 12u, 40u}) {
    CAPTURE(opts);
    PacketSpec spec = bfd_echo(AF_INET);
    spec.ip_options = opts;
    check_reflected(dp, spec);
  }
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFLECTED).packets == 3);
}

TEST_CASE("echo: larger payloads and any source port but 3785 are reflected") {
  ProgHarness dp;
  dp.put_echo_peers();
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    PacketSpec spec = bfd_echo(family);
    spec.payload = 1200;
    spec.sport = 65535;
    check_reflected(dp, spec);
    spec.sport = 3784;  // BFD control's port is not special as an echo source
    check_reflected(dp, spec);
  }
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFLECTED).packets == 4);
}

TEST_CASE("echo: look-alikes pass untouched and are not counted") {
  ProgHarness dp;
  dp.put_echo_peers();
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    const PacketSpec echo = bfd_echo(family);
    struct Case {
      const char* what;
      PacketSpec spec;
    };
    std::vector<Case> cases;
    auto add = [&](const char* what, auto&& change) {
      PacketSpec s = echo;
      change(s);
      cases.push_back({what, s});
    };
    add("source port 3785 (reflector to reflector)", [](PacketSpec& s) { s.sport = 3785; });
    add("destination port 3784 (BFD control)", [](PacketSpec& s) { s.dport = 3784; });
    add("TCP to 3785", [](PacketSpec& s) { s.proto = IPPROTO_TCP; });
    add("first fragment (MF)", [](PacketSpec& s) { s.frag = Frag{7, 0, true}; });
    add("last fragment (offset)", [](PacketSpec& s) { s.frag = Frag{7, 64, false}; });
    add("frame for another host (PACKET_OTHERHOST)",
        [](PacketSpec& s) { s.eth_dst = {0x02, 0, 0, 0, 0, 0x09}; });
    add("broadcast frame", [](PacketSpec& s) { s.eth_dst = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}; });
    add("multicast destination",
        [&](PacketSpec& s) { s.dst = Ip::parse(family == AF_INET ? "224.0.0.1" : "ff02::1"); });
    add("multicast source",
        [&](PacketSpec& s) { s.src = Ip::parse(family == AF_INET ? "239.1.1.1" : "ff02::2"); });
    if (family == AF_INET)
      add("limited broadcast", [](PacketSpec& s) { s.dst = Ip::parse("255.255.255.255"); });
    // Below 60 bytes the frame is padded: skb->len - IP length is no longer the L2 length.
    add("short echo in a padded frame", [](PacketSpec& s) { s.payload = 0; });
    for (const Case& c : cases) {
      CAPTURE(std::string(c.what));
      auto pkt = build(c.spec);
      if (std::string(c.what) == "short echo in a padded frame") {
        if (pkt.size() >= 60) continue;  // IPv6 is never that short
        pkt.resize(60, 0);
      }
      check_passed(dp, pkt);
    }
    // Truncated: the frame ends before the IP length says.
    {
      auto pkt = build(echo);
      pkt.resize(pkt.size() - 8);
      CAPTURE("truncated by 8 bytes");
      check_passed(dp, pkt);
    }
    {
      auto pkt = build(echo);
      pkt.resize(kEthLen + (family == AF_INET ? 22 : 42));  // ends inside the UDP ports
      CAPTURE("truncated inside the UDP header");
      check_passed(dp, pkt);
    }
    // Trailing bytes after the IP datagram (e.g. a trailer): layout check refuses.
    {
      auto pkt = build(echo);
      pkt.resize(pkt.size() + 4, 0);
      CAPTURE("4 bytes after the datagram");
      check_passed(dp, pkt);
    }
  }
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFLECTED).packets == 0);
}

TEST_CASE("echo: an IPv6 echo behind an extension header is not reflected") {
  ProgHarness dp;
  dp.put_echo_peers();
  // The builder writes extension headers only as a Fragment header; an atomic fragment
  // (offset 0, no M flag) is a whole datagram whose next header is not UDP.
  PacketSpec spec = bfd_echo(AF_INET6);
  spec.frag = Frag{9, 0, false};
  check_passed(dp, build(spec));
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFLECTED).packets == 0);
}

TEST_CASE("echo: reflection comes before local delivery; other traffic is still delivered") {
  ProgHarness dp;
  dp.put_echo_peers();
  PacketSpec echo = bfd_echo(AF_INET);
  dp.put_local(echo.dst);  // even if the link address were a local ML address
  check_reflected(dp, echo);
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFLECTED).packets == 1);
  CHECK(dp.ingress_counter(ML_IN_DELIVERED).packets == 0);
  // UDP with TTL 255 to another port of a local address: delivered, not reflected.
  PacketSpec other = echo;
  other.dport = 3784;
  auto pkt = build(other);
  RunResult r = dp.ingress(pkt);
  REQUIRE(r.err == 0);
  CHECK(r.retval == TC_ACT_REDIRECT);
  CHECK(r.out == pkt);
  CHECK(dp.ingress_counter(ML_IN_DELIVERED).packets == 1);
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFLECTED).packets == 1);
}

// The open relay: without the peer check, anyone on the link could make us send UDP to any
// address and port of their choosing, at their rate.
TEST_CASE("echo: only a BFD peer of the link, to our address on it, with TTL 255, is reflected") {
  ProgHarness dp;
  dp.put_echo_peers();
  uint64_t refused = 0;
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    const bool v4 = family == AF_INET;
    const PacketSpec echo = bfd_echo(family);
    struct Case {
      const char* what;
      PacketSpec spec;
    };
    std::vector<Case> cases;
    auto add = [&](const char* what, auto&& change) {
      PacketSpec s = echo;
      change(s);
      cases.push_back({what, s});
    };
    add("TTL 254", [](PacketSpec& s) { s.ttl = 254; });
    add("TTL 64", [](PacketSpec& s) { s.ttl = 64; });
    add("from an on-link address that is no BFD peer",
        [&](PacketSpec& s) { s.src = Ip::parse(v4 ? "10.0.0.77" : "fd00::77"); });
    add("to another address of ours (not the session's)",
        [&](PacketSpec& s) { s.dst = Ip::parse(v4 ? "10.0.0.3" : "fd00::3"); });
    add("the peer, but with the victim as the source (spoofed)",
        [&](PacketSpec& s) { s.src = Ip::parse(v4 ? "192.0.2.9" : "2001:db8::9"); });
    for (const Case& c : cases) {
      CAPTURE(std::string(c.what));
      auto pkt = build(c.spec);
      RunResult r = dp.ingress(pkt);
      REQUIRE(r.err == 0);
      CHECK(r.retval == TC_ACT_SHOT);
      refused++;
    }
  }
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFUSED).packets == refused);
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFLECTED).packets == 0);
}

TEST_CASE("echo: a peer of another link is refused on this one; removed, a peer is refused") {
  ProgHarness dp;
  PacketSpec echo = bfd_echo(AF_INET);
  dp.put_bfd_peer(echo.dst, echo.src, 7);  // the session is on ifindex 7; test-run's is lo (1)
  RunResult r = dp.ingress(build(echo));
  REQUIRE(r.err == 0);
  CHECK(r.retval == TC_ACT_SHOT);
  dp.put_bfd_peer(echo.dst, echo.src);
  check_reflected(dp, echo);
  dp.del_bfd_peer(echo.dst, echo.src);
  r = dp.ingress(build(echo));
  CHECK(r.retval == TC_ACT_SHOT);
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFUSED).packets == 2);
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFLECTED).packets == 1);
}

namespace {

// ml_l2shape (bpf/testing/l2shape.bpf.c) in front of ml_ingress: the packet reaches ml_ingress
// with IPoIB's 24-byte L2 header, as it would on an InfiniBand link, by a tail call.
class IpoibShaped {
 public:
  explicit IpoibShaped(const ProgHarness& dp) : skel_(ml_l2shape_bpf::open_and_load()) {
    if (!skel_) throw std::runtime_error("load ml_l2shape");
    uint32_t slot = 0;
    int fd = dp.ingress_fd();
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ml_shape_next), &slot, &fd, BPF_ANY) != 0) {
      ml_l2shape_bpf::destroy(skel_);
      throw std::runtime_error("ml_shape_next: put ml_ingress");
    }
  }
  ~IpoibShaped() { ml_l2shape_bpf::destroy(skel_); }
  IpoibShaped(const IpoibShaped&) = delete;
  IpoibShaped& operator=(const IpoibShaped&) = delete;

  RunResult run(const std::vector<uint8_t>& pkt) const {
    return test_run(bpf_program__fd(skel_->progs.ml_l2shape), pkt);
  }

 private:
  ml_l2shape_bpf* skel_;
};

}  // namespace

TEST_CASE("echo: an echo with IPoIB's 24-byte L2 header leaves with a 14-byte one, reflected") {
  ProgHarness dp;
  dp.put_echo_peers();
  IpoibShaped ipoib(dp);
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    PacketSpec spec = bfd_echo(family);
    auto pkt = build(spec);
    RunResult r = ipoib.run(pkt);
    REQUIRE(r.err == 0);
    CHECK(r.retval == TC_ACT_REDIRECT);
    // bpf_redirect_neigh strips exactly 14 bytes: a zeroed placeholder, then the swapped IP
    // packet, checksums still valid, nothing else changed.
    REQUIRE(r.out.size() == pkt.size());
    CHECK(std::all_of(r.out.begin(), r.out.begin() + kEthLen, [](uint8_t b) { return b == 0; }));
    auto want = build(spec.reply());
    CHECK(std::equal(r.out.begin() + kEthLen, r.out.end(), want.begin() + kEthLen));
    if (family == AF_INET) CHECK(ipv4_header_ok(r.out));
    CHECK(udp_ok(r.out));
  }
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFLECTED).packets == 2);
}

TEST_CASE("echo: with IPoIB's L2 header, a stranger's echo is refused and ML traffic delivered") {
  ProgHarness dp;
  dp.put_echo_peers();
  dp.put_local(local4());
  IpoibShaped ipoib(dp);
  PacketSpec stranger = bfd_echo(AF_INET);
  stranger.src = stranger4();
  RunResult r = ipoib.run(build(stranger));
  REQUIRE(r.err == 0);
  CHECK(r.retval == TC_ACT_SHOT);
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFUSED).packets == 1);
  // Delivery into the ML device reads relative to the network header: the L2 length is free.
  PacketSpec in = tcp(AF_INET).reply();
  r = ipoib.run(build(in));
  REQUIRE(r.err == 0);
  CHECK(r.retval == TC_ACT_REDIRECT);
  CHECK(dp.ingress_counter(ML_IN_DELIVERED).packets == 1);
  CHECK(dp.ingress_counter(ML_IN_ECHO_REFLECTED).packets == 0);
}
