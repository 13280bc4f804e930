// probe_packet.h - the packet `mlinkctl flow get` asks the datapath about:
// an Ethernet frame (test-run parses one) carrying the flow's IP header and
// the first bytes of its TCP/UDP header (ports), or an ICMP echo header.
// What the hash reads is there; checksums and payload are not needed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/ip.h"
#include "common/result.h"

namespace mlink::flow {

struct FlowSpec {
  IpAddr src;
  IpAddr dst;
  uint8_t proto = 6;  // IPPROTO_*: tcp 6, udp 17, icmp 1 / ipv6-icmp 58
  uint16_t sport = 0;
  uint16_t dport = 0;
};

// "tcp" | "udp" | "icmp" | a number 0..255.
Result<uint8_t> parse_proto(const std::string& text);
// Fails when the addresses are of different families.
Result<std::vector<uint8_t>> probe_frame(const FlowSpec& f);

}  // namespace mlink::flow
