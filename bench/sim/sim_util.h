// sim_util.h - what the simulator's parts (sim.cpp, sim_topo.cpp, sim_bfd.cpp) share:
// pacing constants, address helpers and the stamped output lines the bench parses.
#pragma once

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "common/ip.h"

namespace mlink::sim {

inline constexpr int kBatchesPerCallback = 16;  // × 64 datagrams, then other sources get a turn
inline constexpr uint64_t kTimerAccuracyUs = 500;
inline constexpr uint32_t kSlowControlUs = 1'000'000;  // RFC 5880 §6.8.3, as liveness.cpp
inline constexpr uint16_t kBfdSourcePort = 49152;      // + link index (RFC 5881 §4: 49152..65535)
inline constexpr uint16_t kEchoPort = 3785;            // RFC 5881 §4

inline uint64_t wall_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000 + uint64_t(ts.tv_nsec) / 1000;
}

inline std::string ip_str(in_addr a) {
  char b[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, b, sizeof(b));
  return b;
}

inline IpAddr to_ip(in_addr a) {
  IpAddr ip;
  ip.family = AF_INET;
  std::memcpy(ip.bytes.data(), &a, 4);
  return ip;
}

inline std::optional<in_addr> v4_of(const std::vector<Prefix>& ps) {
  for (const auto& p : ps)
    if (p.addr.family == AF_INET) {
      in_addr a;
      std::memcpy(&a, p.addr.bytes.data(), 4);
      return a;
    }
  return std::nullopt;
}

// One line on stdout, stamped with the wall clock in microseconds (the bench's time base).
template <class... Args>
void out(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stdout, "{} ", wall_us());
  fmt::print(stdout, f, std::forward<Args>(args)...);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace mlink::sim
