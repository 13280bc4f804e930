// checksum_oracle.h - checksums computed apart from packets.cpp (which builds the frames), so a
// test of what the datapath rewrote does not check the builder against itself. Frames are
// Ethernet + IPv4/IPv6 + UDP.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bpf/packets.h"

namespace mlink::bpftest {

inline uint16_t be16(const std::vector<uint8_t>& p, size_t at) {
  return static_cast<uint16_t>(p[at] << 8 | p[at + 1]);
}

// One's complement sum over [from, from + n), folded to 16 bits.
inline uint16_t ones_sum(const std::vector<uint8_t>& p, size_t from, size_t n, uint64_t sum = 0) {
  for (size_t i = 0; i < n; i++) sum += (i % 2 == 0) ? uint64_t{p[from + i]} << 8 : p[from + i];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The frame's IPv4 header checksum verifies (sums to 0xffff).
inline bool ipv4_header_ok(const std::vector<uint8_t>& f) {
  size_t ihl = (f[kEthLen] & 0xf) * 4u;
  return ones_sum(f, kEthLen, ihl) == 0xffff;
}

// The frame's UDP checksum verifies against the pseudo-header; an IPv4 checksum of 0 (none)
// does not count as valid here: the echoes under test all carry one.
inline bool udp_ok(const std::vector<uint8_t>& f) {
  bool v4 = (f[kEthLen] >> 4) == 4;
  size_t l3 = kEthLen, l4, addr_off, addr_len;
  if (v4) {
    l4 = l3 + (f[l3] & 0xf) * 4u;
    addr_off = l3 + 12;
    addr_len = 8;
  } else {
    l4 = l3 + 40;
    addr_off = l3 + 8;
    addr_len = 32;
  }
  size_t udp_len = be16(f, l4 + 4);
  if (be16(f, l4 + 6) == 0 || l4 + udp_len > f.size()) return false;
  uint64_t pseudo = ones_sum(f, addr_off, addr_len);
  pseudo += IPPROTO_UDP + udp_len;
  return ones_sum(f, l4, udp_len, pseudo) == 0xffff;
}

// The offset of the L4 header of frame f (IPv4 options included; IPv6: no extension header).
inline size_t l4_of(const std::vector<uint8_t>& f) {
  return (f[kEthLen] >> 4) == 4 ? kEthLen + (f[kEthLen] & 0xf) * 4u : kEthLen + 40;
}

// Writes the UDP checksum of frame f anew.
inline void fix_udp_csum(std::vector<uint8_t>& f) {
  bool v4 = (f[kEthLen] >> 4) == 4;
  size_t l4 = l4_of(f), udp_len = be16(f, l4 + 4);
  f[l4 + 6] = f[l4 + 7] = 0;
  uint64_t pseudo = ones_sum(f, kEthLen + (v4 ? 12 : 8), v4 ? 8 : 32) + IPPROTO_UDP + udp_len;
  uint16_t c = static_cast<uint16_t>(~ones_sum(f, l4, udp_len, pseudo));
  f[l4 + 6] = static_cast<uint8_t>(c >> 8);
  f[l4 + 7] = static_cast<uint8_t>(c);
}

}  // namespace mlink::bpftest
