// Group echo in ml_ingress (bpf/lib/group_echo.h). A peer's group echo (to 224.0.0.1 / ff02::1,
// port 3785, TTL 255, magic "MLEG", from a BFD peer of the link) goes back to the peer by unicast
// from our address on the link (ml_link_addrs), both checksums still valid and the L2 header
// zeroed for bpf_redirect_neigh. The reflection of one of our own group echoes is recorded in the
// session's ml_echo_seen slot when (socket, seq, nonce) is one we sent on that link, and consumed;
// anything else shaped like one is refused and counted.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <doctest/doctest.h>

#include <cstring>

#include "bpf/checksum_oracle.h"
#include "bpf/packets.h"
#include "mlink.skel.h"
#include "proto/bfd/echo.h"

using namespace mlink::bpftest;

namespace {

constexpr uint32_t kLo = 1;  // test-run's device
constexpr std::array<uint8_t, 6> kAllNodes4Mac = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
constexpr std::array<uint8_t, 6> kAllNodes6Mac = {0x33, 0x33, 0x00, 0x00, 0x00, 0x01};

Ip group(uint8_t family) {
  return Ip::parse(family == AF_INET ? "224.0.0.1" : "ff02::1");
}

// The peer (10.0.0.2 / fd00::2) sends its group echo; we are 10.0.0.1 / fd00::1.
std::vector<uint8_t> group_echo(uint8_t family, uint8_t ttl = 255) {
  PacketSpec s = bfd_echo(family);
  s.dst = group(family);
  s.ttl = ttl;
  s.eth_dst = family == AF_INET ? kAllNodes4Mac : kAllNodes6Mac;
  auto f = build(s);
  auto payload = mlink::bfd::encode_group_echo({.socket = 2, .seq = 9, .sent_us = 5, .nonce = 77});
  std::copy(payload.begin(), payload.end(), f.begin() + static_cast<long>(l4_of(f) + 8));
  fix_udp_csum(f);
  return f;
}

// The peer's reflection of our group echo `e` (from its port 3785 to our 49152).
std::vector<uint8_t> reflection(uint8_t family, const mlink::bfd::GroupEcho& e, uint8_t ttl = 255) {
  PacketSpec s = bfd_echo(family);  // from the peer to us
  std::swap(s.sport, s.dport);
  s.ttl = ttl;
  auto f = build(s);
  auto payload = mlink::bfd::encode_group_echo(e);
  std::copy(payload.begin(), payload.end(), f.begin() + static_cast<long>(l4_of(f) + 8));
  fix_udp_csum(f);
  return f;
}

void put_link_addr(ProgHarness& dp, const Ip& local) {
  ml_link_key k{};
  k.ifindex = kLo;
  k.family = local.family;
  ml_addr v = local.key();
  REQUIRE(bpf_map_update_elem(bpf_map__fd(dp.skel()->maps.ml_link_addrs), &k, &v, BPF_ANY) == 0);
}

void put_sent(ProgHarness& dp, uint32_t socket, uint32_t ifindex, uint32_t seq, uint64_t nonce) {
  int fd = bpf_map__fd(dp.skel()->maps.ml_echo_tx);
  ml_echo_tx tx{};
  REQUIRE(bpf_map_lookup_elem(fd, &socket, &tx) == 0);
  tx.ifindex = ifindex;
  tx.ring[seq & (ML_ECHO_RING - 1)] = {seq, 0, nonce};
  REQUIRE(bpf_map_update_elem(fd, &socket, &tx, BPF_ANY) == 0);
}

ml_echo_seen seen(ProgHarness& dp, uint32_t slot) {
  ml_echo_seen s{};
  REQUIRE(bpf_map_lookup_elem(bpf_map__fd(dp.skel()->maps.ml_echo_seen), &slot, &s) == 0);
  return s;
}

const char* name(uint8_t family) {
  return family == AF_INET ? "ipv4" : "ipv6";
}

}  // namespace

TEST_CASE("group echo: a peer's is reflected to it by unicast, from our address on the link") {
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    ProgHarness dp;
    PacketSpec e = bfd_echo(family);  // e.src: the peer, e.dst: us
    dp.put_bfd_peer(e.dst, e.src);
    put_link_addr(dp, e.dst);
    auto in = group_echo(family);
    REQUIRE(udp_ok(in));
    RunResult r = dp.ingress(in);
    REQUIRE(r.err == 0);
    CHECK(r.retval == TC_ACT_REDIRECT);
    REQUIRE(r.out.size() == in.size());
    // What it should be: the same datagram from us to the peer, ports swapped, L2 zeroed.
    PacketSpec want = e.reply();
    want.eth_dst = {};
    auto expect = build(want);
    std::copy(in.begin() + static_cast<long>(l4_of(in) + 8), in.end(),
              expect.begin() + static_cast<long>(l4_of(expect) + 8));
    fix_udp_csum(expect);
    std::fill(expect.begin(), expect.begin() + kEthLen, 0);
    CHECK(r.out == expect);
    CHECK(udp_ok(r.out));
    if (family == AF_INET) CHECK(ipv4_header_ok(r.out));
    CHECK(dp.ingress_counter(ML_IN_GROUP_REFLECTED).packets == 1);
  }
}

TEST_CASE(
    "group echo: not reflected with TTL != 255 or from no BFD peer; passed without a session") {
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    ProgHarness dp;
    PacketSpec e = bfd_echo(family);
    auto in = group_echo(family);
    RunResult r = dp.ingress(in);  // no session on the link: not ours to answer
    CHECK(r.retval == TC_ACT_OK);
    CHECK(r.out == in);
    put_link_addr(dp, e.dst);
    r = dp.ingress(in);  // an address here, but the sender is no BFD peer
    CHECK(r.retval == TC_ACT_SHOT);
    dp.put_bfd_peer(e.dst, e.src);
    r = dp.ingress(group_echo(family, 254));
    CHECK(r.retval == TC_ACT_SHOT);
    CHECK(dp.ingress_counter(ML_IN_GROUP_REFUSED).packets == 2);
    CHECK(dp.ingress_counter(ML_IN_GROUP_REFLECTED).packets == 0);
    auto junk = in;  // another magic: somebody else's multicast to 3785
    junk[l4_of(junk) + 8] ^= 0xff;
    fix_udp_csum(junk);
    r = dp.ingress(junk);
    CHECK(r.retval == TC_ACT_OK);
    CHECK(r.out == junk);
  }
}

TEST_CASE("group echo: a reflection of ours is recorded in the session's slot and consumed") {
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    ProgHarness dp;
    PacketSpec e = bfd_echo(family);
    constexpr uint32_t kSlot = 4, kSocket = 3;
    dp.put_bfd_peer(e.dst, e.src, kLo, kSlot + 1);
    for (uint32_t seq : {7u, 8u, 9u}) put_sent(dp, kSocket, kLo, seq, 1000 + seq);
    auto echo = [&](uint32_t seq) {
      return reflection(family, {.socket = kSocket, .seq = seq, .sent_us = 1, .nonce = 1000 + seq});
    };
    RunResult r = dp.ingress(echo(7));
    CHECK(r.retval == TC_ACT_STOLEN);  // consumed, not counted as a drop by the qdisc
    ml_echo_seen s = seen(dp, kSlot);
    CHECK(s.count == 1);
    CHECK(s.seq == 7);
    CHECK(s.bits == 1);
    CHECK(s.last_ns > 0);
    dp.ingress(echo(9));  // 8 is late
    s = seen(dp, kSlot);
    CHECK(s.seq == 9);
    CHECK(s.bits == 0b101);
    dp.ingress(echo(8));
    s = seen(dp, kSlot);
    CHECK(s.seq == 9);
    CHECK(s.bits == 0b111);
    CHECK(s.count == 3);
    CHECK(dp.ingress_counter(ML_IN_GROUP_SEEN).packets == 3);
  }
}

TEST_CASE("group echo: a reflection we did not send, or from elsewhere, is refused") {
  for (uint8_t family : {AF_INET, AF_INET6}) {
    CAPTURE(name(family));
    ProgHarness dp;
    PacketSpec e = bfd_echo(family);
    constexpr uint32_t kSlot = 0, kSocket = 1;
    dp.put_bfd_peer(e.dst, e.src, kLo, kSlot + 1);
    put_sent(dp, kSocket, kLo, 5, 42);
    auto refused = [&](const std::vector<uint8_t>& pkt) {
      RunResult r = dp.ingress(pkt);
      return r.err == 0 && r.retval == TC_ACT_SHOT;
    };
    CHECK(refused(reflection(family, {.socket = kSocket, .seq = 5, .nonce = 43})));      // nonce
    CHECK(refused(reflection(family, {.socket = kSocket, .seq = 1, .nonce = 42})));      // seq
    CHECK(refused(reflection(family, {.socket = 0, .seq = 5, .nonce = 42})));            // socket
    CHECK(refused(reflection(family, {.socket = 9999, .seq = 5, .nonce = 42})));         // range
    CHECK(refused(reflection(family, {.socket = kSocket, .seq = 5, .nonce = 42}, 64)));  // TTL
    put_sent(dp, kSocket, 7, 5, 42);  // sent on another link
    CHECK(refused(reflection(family, {.socket = kSocket, .seq = 5, .nonce = 42})));
    CHECK(dp.ingress_counter(ML_IN_GROUP_REFUSED).packets == 6);
    CHECK(seen(dp, kSlot).count == 0);
    put_sent(dp, kSocket, kLo, 5, 42);
    dp.put_bfd_peer(e.dst, e.src, kLo, 0);  // a session without a slot
    CHECK(refused(reflection(family, {.socket = kSocket, .seq = 5, .nonce = 42})));
    dp.put_bfd_peer(e.dst, e.src, kLo, kSlot + 1);
    RunResult r = dp.ingress(reflection(family, {.socket = kSocket, .seq = 5, .nonce = 42}));
    CHECK(r.retval == TC_ACT_STOLEN);
    CHECK(seen(dp, kSlot).count == 1);  // ours: recorded
  }
}
