// log.h - leveled logging to stderr through fmt.
//
// Under systemd (JOURNAL_STREAM set) each line carries a "<N>" syslog prefix
// so journald records the level; otherwise a readable "LEVEL:" tag.
#pragma once

#include <fmt/core.h>

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

}  // namespace mlink::log
