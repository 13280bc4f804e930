#include "common/log.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

namespace mlink::log {
namespace {

Level g_min = Level::Info;
std::string g_tag = "mlink";
const bool g_journal = std::getenv("JOURNAL_STREAM") != nullptr;

const char* name(Level l) {
  switch (l) {
    case Level::Debug:
      return "debug";
    case Level::Info:
      return "info";
    case Level::Warning:
      return "warning";
    case Level::Error:
      return "error";
  }
  return "?";
}

}  // namespace

void set_level(Level min) {
  g_min = min;
}
void set_tag(std::string_view tag) {
  g_tag = tag;
}
bool enabled(Level l) {
  return static_cast<int>(l) <= static_cast<int>(g_min);
}

void write(Level l, std::string_view msg) {
  if (g_journal) {
    fmt::print(stderr, "<{}>{}\n", static_cast<int>(l), msg);
  } else {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm t{};
    localtime_r(&ts.tv_sec, &t);
    fmt::print(stderr, "{:02}:{:02}:{:02}.{:03} {} {}: {}\n", t.tm_hour, t.tm_min, t.tm_sec,
               ts.tv_nsec / 1000000, g_tag, name(l), msg);
  }
  std::fflush(stderr);
}

bool RateLimit::allow(uint64_t now_us) {
  if (now_us >= window_us_ + 1'000'000) {
    window_us_ = now_us;
    used_ = 0;
  }
  if (used_ < burst_) {
    used_++;
    return true;
  }
  held_++;
  return false;
}

uint64_t RateLimit::suppressed() {
  uint64_t n = held_;
  held_ = 0;
  return n;
}

std::string suppressed_note(RateLimit& r) {
  uint64_t n = r.suppressed();
  return n ? fmt::format(" ({} more since the last such line)", n) : std::string();
}

}  // namespace mlink::log
