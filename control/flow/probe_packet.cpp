#include "flow/probe_packet.h"

#include <netinet/in.h>

#include <algorithm>
#include <charconv>

namespace mlink::flow {

namespace {

void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

}  // namespace

Result<uint8_t> parse_proto(const std::string& text) {
  if (text == "tcp") return uint8_t{IPPROTO_TCP};
  if (text == "udp") return uint8_t{IPPROTO_UDP};
  if (text == "icmp") return uint8_t{IPPROTO_ICMP};  // ICMPv6 for an IPv6 flow
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v > 255)
    return Error{"protocol '" + text + "': want tcp, udp, icmp or 0..255"};
  return static_cast<uint8_t>(v);
}

Result<std::vector<uint8_t>> probe_frame(const FlowSpec& f) {
  if (f.src.family != f.dst.family || (f.src.family != AF_INET && f.src.family != AF_INET6))
    return Error{"source and destination must both be IPv4 or both IPv6"};
  const bool v4 = f.src.is_v4();
  uint8_t proto = f.proto;
  if (!v4 && proto == IPPROTO_ICMP) proto = IPPROTO_ICMPV6;
  const size_t l3 = 14, ip_len = v4 ? 20 : 40, l4_len = 20;
  std::vector<uint8_t> b(l3 + ip_len + l4_len, 0);
  b[0] = 0x02;  // a locally administered unicast MAC: the frame is never sent
  b[6] = 0x02;
  put16(b, 12, v4 ? 0x0800 : 0x86dd);
  if (v4) {
    b[l3] = 0x45;
    put16(b, l3 + 2, static_cast<uint16_t>(ip_len + l4_len));
    b[l3 + 8] = 64;
    b[l3 + 9] = proto;
    std::copy_n(f.src.bytes.begin(), 4, b.begin() + l3 + 12);
    std::copy_n(f.dst.bytes.begin(), 4, b.begin() + l3 + 16);
  } else {
    b[l3] = 0x60;
    put16(b, l3 + 4, static_cast<uint16_t>(l4_len));
    b[l3 + 6] = proto;
    b[l3 + 7] = 64;
    std::copy_n(f.src.bytes.begin(), 16, b.begin() + l3 + 8);
    std::copy_n(f.dst.bytes.begin(), 16, b.begin() + l3 + 24);
  }
  const size_t l4 = l3 + ip_len;
  if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
    b[l4] = v4 ? 8 : 128;  // echo request; id and sequence stand where ports do
    put16(b, l4 + 4, f.sport);
    put16(b, l4 + 6, f.dport);
  } else {
    put16(b, l4, f.sport);
    put16(b, l4 + 2, f.dport);
    if (proto == IPPROTO_TCP) b[l4 + 12] = 0x50;  // data offset 5
  }
  return b;
}

}  // namespace mlink::flow
