#include "common/ip.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <charconv>

namespace mlink {

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  std::string s(text);
  IpAddr a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return std::nullopt;
}

bool IpAddr::is_v4() const {
  return family == AF_INET;
}

bool IpAddr::is_link_local_v6() const {
  return !is_v4() && bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80;
}

std::string IpAddr::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family != AF_INET && family != AF_INET6) return "<none>";
  inet_ntop(family, bytes.data(), buf, sizeof(buf));
  return buf;
}

std::optional<Prefix> Prefix::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddr::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  unsigned max = addr->is_v4() ? 32 : 128;
  unsigned len = max;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || len > max)
      return std::nullopt;
  }
  return Prefix{*addr, static_cast<uint8_t>(len)};
}

Prefix Prefix::network() const {
  Prefix p = *this;
  for (size_t i = 0; i < p.addr.bytes.size(); i++) {
    int bits = static_cast<int>(len) - static_cast<int>(i) * 8;
    if (bits >= 8) continue;
    p.addr.bytes[i] &= bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
  }
  return p;
}

bool Prefix::contains(const IpAddr& a) const {
  if (a.family != addr.family) return false;
  Prefix other{a, len};
  return other.network().addr == network().addr;
}

std::string Prefix::str() const {
  return addr.str() + "/" + std::to_string(len);
}

}  // namespace mlink
