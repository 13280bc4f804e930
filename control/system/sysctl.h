// sysctl.h - reading and writing /proc/sys, and temporary settings.
//
// Paths are relative to /proc/sys with '/' separators
// ("net/ipv4/conf/all/arp_announce"); dots are not translated because
// interface names may contain them. /proc/sys/net belongs to the network
// namespace of the thread at the time of each call.
#pragma once

#include <string>

#include "common/result.h"

namespace mlink {

Result<std::string> sysctl_read(const std::string& path);  // trailing newline stripped
Status sysctl_write(const std::string& path, const std::string& value);

// A sysctl set for as long as the guard lives: the destructor writes back the
// value read before the change (best effort, a failure there is ignored).
class SysctlGuard {
 public:
  static Result<SysctlGuard> set(std::string path, std::string value);
  SysctlGuard(SysctlGuard&& other) noexcept;
  SysctlGuard& operator=(SysctlGuard&& other) noexcept;
  SysctlGuard(const SysctlGuard&) = delete;
  SysctlGuard& operator=(const SysctlGuard&) = delete;
  ~SysctlGuard();

  const std::string& path() const { return path_; }
  const std::string& old_value() const { return old_; }

 private:
  SysctlGuard(std::string path, std::string old_value);
  void restore();
  std::string path_;
  std::string old_;
  bool active_ = false;  // false once moved from
};

}  // namespace mlink
