// The socket filters on the agent's sockets (bpf/lib/guard.h), by BPF_PROG_TEST_RUN on crafted
// datagrams: ml_sock_bfd keeps a BFD control packet or a reflected echo from a BFD peer of the
// link with TTL 255 and refuses (0) everything else, counted by reason; ml_sock_topo keeps a
// TTL-255 datagram shaped like a topology packet. What they keep is the whole datagram.
#include <doctest/doctest.h>

#include <string>

#include "bpf/packets.h"

using namespace mlink::bpftest;

namespace {

const char* name(uint8_t family) {
  return family == AF_INET ? "ipv4" : "ipv6";
}

// A BFD control packet from the peer of bfd_echo() (10.0.0.2 / fd00::2) to our control port:
// version 1, state Up, Detect Mult 3, length 24 (the builder's payload is zeros; the header
// is written into it).
std::vector<uint8_t> control(uint8_t family, uint8_t ttl = 255) {
  PacketSpec s = bfd_echo(family);
  s.dport = ML_BFD_CONTROL_PORT;
  s.ttl = ttl;
  s.payload = 24;
  s.udp_csum = false;
  auto pkt = build(s);
  size_t payload = pkt.size() - 24;
  pkt[payload + 0] = 1 << 5;  // version 1, diag 0
  pkt[payload + 1] = 3 << 6;  // Up
  pkt[payload + 2] = 3;
  pkt[payload + 3] = 24;
  return pkt;
}

// A topology packet's first bytes: MLNK, version, type, flags, length = the payload's.
std::vector<uint8_t> topo(uint8_t family, size_t len = 120, uint8_t ttl = 255) {
  PacketSpec s = bfd_echo(family);
  s.sport = s.dport = 28012;
  s.ttl = ttl;
  s.payload = len;
  s.udp_csum = false;
  auto pkt = build(s);
  size_t payload = pkt.size() - len;
  const uint8_t head[] = {'M', 'L', 'N', 'K', 1, 1, 0, 0, uint8_t(len >> 8), uint8_t(len)};
  std::copy(std::begin(head), std::end(head), pkt.begin() + static_cast<long>(payload));
  return pkt;
}

uint32_t verdict(const RunResult& r) {
  REQUIRE(r.err == 0);
  return r.retval;
}

}  // namespace

TEST_CASE("socket guard: BFD control and reflected echoes from the link's BFD peer are kept") {
  ProgHarness dp;
  dp.put_echo_peers();
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    auto c = control(family);
    CHECK(verdict(dp.sock_bfd(c)) == c.size() - kEthLen);  // a socket filter sees no L2 header
    PacketSpec back = bfd_echo(family);  // our echo, on its way back: from 3785 to our port
    back.sport = ML_BFD_ECHO_PORT;
    back.dport = 40001;
    auto b = build(back);
    CHECK(verdict(dp.sock_bfd(b)) == b.size() - kEthLen);
  }
  for (uint32_t c : {ML_IN_SOCK_HOP_LIMIT, ML_IN_SOCK_NOT_PEER, ML_IN_SOCK_MALFORMED})
    CHECK(dp.ingress_counter(c).packets == 0);
}

TEST_CASE("socket guard: a BFD socket refuses wrong TTL, non-peers and junk, each counted") {
  ProgHarness dp;
  dp.put_echo_peers();
  uint64_t hop = 0, stranger = 0, junk = 0;
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    const bool v4 = family == AF_INET;
    for (uint8_t ttl : {64, 254, 1}) {
      CHECK(verdict(dp.sock_bfd(control(family, ttl))) == 0);
      hop++;
    }
    auto from_stranger = control(family);
    PacketSpec s = bfd_echo(family);
    s.src = Ip::parse(v4 ? "10.0.0.66" : "fd00::66");
    s.dport = ML_BFD_CONTROL_PORT;
    s.payload = 24;
    CHECK(verdict(dp.sock_bfd(build(s))) == 0);
    stranger++;
    // From the peer with TTL 255, but not BFD: random bytes, a bad version, a zero Detect
    // Mult, Multipoint set, a length beyond the datagram, a datagram too short, and neither
    // to 3784 nor from 3785.
    for (int k = 0; k < 7; k++) {
      CAPTURE(k);
      auto p = control(family);
      size_t h = p.size() - 24;
      switch (k) {
        case 0:
          for (size_t i = h; i < p.size(); i++) p[i] = static_cast<uint8_t>(i * 37 + 11);
          p[h] = 0xe0;  // version 7
          break;
        case 1:
          p[h] = 2 << 5;
          break;
        case 2:
          p[h + 2] = 0;
          break;
        case 3:
          p[h + 1] |= 1;
          break;
        case 4:
          p[h + 3] = 200;
          break;
        case 5: {
          PacketSpec t = bfd_echo(family);
          t.dport = ML_BFD_CONTROL_PORT;
          t.payload = 8;
          p = build(t);
          break;
        }
        case 6: {
          PacketSpec t = bfd_echo(family);
          t.dport = 40001;
          p = build(t);
          break;
        }
      }
      CHECK(verdict(dp.sock_bfd(p)) == 0);
      junk++;
    }
  }
  CHECK(dp.ingress_counter(ML_IN_SOCK_HOP_LIMIT).packets == hop);
  CHECK(dp.ingress_counter(ML_IN_SOCK_NOT_PEER).packets == stranger);
  CHECK(dp.ingress_counter(ML_IN_SOCK_MALFORMED).packets == junk);
}

TEST_CASE("socket guard: fragments and IPv6 extension headers never reach a BFD socket") {
  ProgHarness dp;
  dp.put_echo_peers();
  PacketSpec s = bfd_echo(AF_INET);
  s.dport = ML_BFD_CONTROL_PORT;
  s.frag = Frag{5, 0, true};
  CHECK(verdict(dp.sock_bfd(build(s))) == 0);
  PacketSpec s6 = bfd_echo(AF_INET6);
  s6.dport = ML_BFD_CONTROL_PORT;
  s6.frag = Frag{5, 0, false};
  CHECK(verdict(dp.sock_bfd(build(s6))) == 0);
  CHECK(dp.ingress_counter(ML_IN_SOCK_MALFORMED).packets == 2);
}

TEST_CASE("socket guard: the topology socket keeps TTL 255 packets shaped like the protocol's") {
  ProgHarness dp;  // no BFD peers needed: discovery hears nodes it does not know yet
  uint64_t hop = 0, junk = 0;
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    for (size_t len : {84u, 120u, 1232u}) {
      auto p = topo(family, len);
      CHECK(verdict(dp.sock_topo(p)) == p.size() - kEthLen);
    }
    CHECK(verdict(dp.sock_topo(topo(family, 120, 64))) == 0);
    hop++;
    auto bad_magic = topo(family);
    bad_magic[bad_magic.size() - 120] = 'X';
    auto bad_len = topo(family);
    bad_len[bad_len.size() - 120 + 9] = 121;
    for (const auto& p : {bad_magic, bad_len, topo(family, 83), topo(family, 1233)}) {
      CHECK(verdict(dp.sock_topo(p)) == 0);
      junk++;
    }
  }
  CHECK(dp.ingress_counter(ML_IN_SOCK_HOP_LIMIT).packets == hop);
  CHECK(dp.ingress_counter(ML_IN_SOCK_MALFORMED).packets == junk);
}
