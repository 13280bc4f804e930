#include "system/sysctl.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "system/sysctl_store.h"

namespace mlink {

Result<std::string> sysctl_read(const std::string& path, const std::string& root) {
  int fd = ::open((root + "/" + path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return os_error("read sysctl " + path, errno);
  std::string out;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return os_error("read sysctl " + path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

Status sysctl_write(const std::string& path, const std::string& value, const std::string& root) {
  const std::string what = "write sysctl " + path + "=" + value;
  // O_TRUNC as a shell's `>` does: proc ignores it, a plain file (tests) needs it.
  int fd = ::open((root + "/" + path).c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return os_error(what, errno);
  // proc handlers take the value in one write; a short write is an error.
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = n < 0 ? errno : (static_cast<size_t>(n) != value.size() ? EIO : 0);
  ::close(fd);
  if (err) return os_error(what, err);
  return {};
}

Result<SysctlGuard> SysctlGuard::set(std::string path, std::string value, SysctlStore* store) {
  if (store) {
    auto old = store->set(path, value);
    if (!old) return old.error();
    return SysctlGuard(std::move(path), std::move(*old), store);
  }
  auto old = sysctl_read(path);
  if (!old) return old.error();
  if (Status st = sysctl_write(path, value); !st) return st.error();
  return SysctlGuard(std::move(path), std::move(*old), nullptr);
}

SysctlGuard::SysctlGuard(std::string path, std::string old_value, SysctlStore* store)
    : path_(std::move(path)), old_(std::move(old_value)), store_(store), active_(true) {}

SysctlGuard::SysctlGuard(SysctlGuard&& other) noexcept
    : path_(std::move(other.path_)),
      old_(std::move(other.old_)),
      store_(other.store_),
      active_(std::exchange(other.active_, false)) {}

SysctlGuard& SysctlGuard::operator=(SysctlGuard&& other) noexcept {
  if (this != &other) {
    restore();
    path_ = std::move(other.path_);
    old_ = std::move(other.old_);
    store_ = other.store_;
    active_ = std::exchange(other.active_, false);
  }
  return *this;
}

SysctlGuard::~SysctlGuard() {
  restore();
}

void SysctlGuard::restore() {
  if (!active_) return;
  active_ = false;
  if (store_) {
    store_->restore(path_);
    return;
  }
  // Nothing useful to do with a failure in a destructor: the setting (or its
  // whole netns) may legitimately be gone by now.
  (void)sysctl_write(path_, old_);
}

}  // namespace mlink
