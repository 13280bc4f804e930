// sysctl.h - reading and writing /proc/sys, and temporary settings.
//
// Paths are relative to /proc/sys with '/' separators
// ("net/ipv4/conf/all/arp_announce"); dots are not translated because
// interface names may contain them. /proc/sys/net belongs to the network
// namespace of the thread at the time of each call. `root` is there for tests
// that stand a directory in for /proc/sys.
#pragma once

#include <string>

#include "common/result.h"

namespace mlink {

class SysctlStore;

inline constexpr const char* kProcSys = "/proc/sys";

// Trailing newline stripped.
Result<std::string> sysctl_read(const std::string& path, const std::string& root = kProcSys);
Status sysctl_write(const std::string& path, const std::string& value,
                    const std::string& root = kProcSys);

// A sysctl set for as long as the guard lives: the destructor writes back the
// value read before the change (best effort, a failure there is ignored).
// With a store, the original is the store's (kept in its file, so that it
// outlives a killed agent) and the store forgets it once written back.
class SysctlGuard {
 public:
  static Result<SysctlGuard> set(std::string path, std::string value, SysctlStore* store = nullptr);
  SysctlGuard(SysctlGuard&& other) noexcept;
  SysctlGuard& operator=(SysctlGuard&& other) noexcept;
  SysctlGuard(const SysctlGuard&) = delete;
  SysctlGuard& operator=(const SysctlGuard&) = delete;
  ~SysctlGuard();

  const std::string& path() const { return path_; }
  const std::string& old_value() const { return old_; }

 private:
  SysctlGuard(std::string path, std::string old_value, SysctlStore* store);
  void restore();
  std::string path_;
  std::string old_;
  SysctlStore* store_ = nullptr;
  bool active_ = false;  // false once moved from
};

}  // namespace mlink
