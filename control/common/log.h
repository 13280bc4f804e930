// log.h - leveled logging to stderr through fmt.
//
// Under systemd (JOURNAL_STREAM set) each line carries a "<N>" syslog prefix
// so journald records the level; otherwise a readable "LEVEL:" tag.
#pragma once

#include <fmt/core.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace mlink::log {

enum class Level { Debug = 7, Info = 6, Warning = 4, Error = 3 };

void set_level(Level min);
void set_tag(std::string_view tag);  // e.g. "mlinkd[a]"
bool enabled(Level l);
void write(Level l, std::string_view msg);

template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... a) {
  if (enabled(Level::Debug)) write(Level::Debug, fmt::format(f, std::forward<Args>(a)...));
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... a) {
  if (enabled(Level::Info)) write(Level::Info, fmt::format(f, std::forward<Args>(a)...));
}
template <class... Args>
void warn(fmt::format_string<Args...> f, Args&&... a) {
  if (enabled(Level::Warning)) write(Level::Warning, fmt::format(f, std::forward<Args>(a)...));
}
template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... a) {
  write(Level::Error, fmt::format(f, std::forward<Args>(a)...));
}

// At most `burst` lines per second for one kind of event (a rejected packet:
// a flood must not become a flood of log lines). allow() says whether this
// one may be logged; the lines held back meanwhile are counted, and
// suppressed() hands that count to the next line that is logged.
class RateLimit {
 public:
  explicit RateLimit(uint32_t burst = 10) : burst_(burst) {}
  bool allow(uint64_t now_us);
  uint64_t suppressed();  // since the last call; resets
 private:
  uint32_t burst_;
  uint64_t window_us_ = 0;
  uint32_t used_ = 0;
  uint64_t held_ = 0;
};

// "" or " (N more since the last such line)": for the line a RateLimit allowed.
std::string suppressed_note(RateLimit& r);

}  // namespace mlink::log
