// ip.h - IPv4/IPv6 addresses and prefixes as the control plane uses them.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mlink {

struct IpAddr {
  int family = 0;                   // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};  // IPv4 in bytes[0..3], rest zero

  static std::optional<IpAddr> parse(std::string_view text);  // no prefix
  bool is_v4() const;
  bool is_link_local_v6() const;  // fe80::/10
  size_t size() const { return is_v4() ? 4 : 16; }
  std::string str() const;
  auto operator<=>(const IpAddr&) const = default;
};

struct Prefix {
  IpAddr addr;
  uint8_t len = 0;

  // "10.88.0.1/16"; without "/len" the host length (32 or 128) is used.
  static std::optional<Prefix> parse(std::string_view text);
  bool contains(const IpAddr& a) const;
  Prefix network() const;  // host bits cleared
  std::string str() const;
  auto operator<=>(const Prefix&) const = default;
};

}  // namespace mlink
