#include "netlink/tun.h"

#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace mlink::nl {

Result<TunDevice> TunDevice::create(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return os_error("create tun " + name, EINVAL);
  // TUNSETIFF on an existing tun would attach to it; a clear EEXIST here,
  // and IFF_TUN_EXCL below for a device that appears in between.
  if (if_nametoindex(name.c_str()) != 0) return os_error("create tun " + name, EEXIST);
  return open_tun(name, true);
}

Result<TunDevice> TunDevice::adopt(const std::string& name) {
  if (!is_tun(name)) return Error{"adopt " + name + ": not a tun device"};
  return open_tun(name, false);
}

// Asks the driver (ethtool) rather than sysfs, which may belong to another
// network namespace than ours.
bool TunDevice::is_tun(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return false;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_data = reinterpret_cast<char*>(&info);
  bool tun = ioctl(fd, SIOCETHTOOL, &ifr) == 0 && std::strcmp(info.driver, "tun") == 0;
  ::close(fd);
  return tun;
}

Result<TunDevice> TunDevice::open_tun(const std::string& name, bool exclusive) {
  const std::string what = (exclusive ? "create tun " : "adopt tun ") + name;
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return os_error(what + ": open /dev/net/tun", errno);
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  // ifr_flags is a short; IFF_TUN_EXCL (0x8000) sets its sign bit on purpose.
  ifr.ifr_flags = static_cast<short>(IFF_TUN | IFF_NO_PI | (exclusive ? IFF_TUN_EXCL : 0));
  if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0) {
    int err = errno == EBUSY && exclusive ? EEXIST : errno;
    ::close(fd);
    return os_error(what, err);
  }
  std::string actual(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  int ifindex = static_cast<int>(if_nametoindex(actual.c_str()));
  if (ifindex == 0) {
    int err = errno;
    ::close(fd);
    return os_error(what + ": ifindex", err);
  }
  return TunDevice(fd, std::move(actual), ifindex);
}

TunDevice::TunDevice(int fd, std::string name, int ifindex)
    : fd_(fd), name_(std::move(name)), ifindex_(ifindex) {}

TunDevice::TunDevice(TunDevice&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      name_(std::move(other.name_)),
      ifindex_(std::exchange(other.ifindex_, 0)) {}

TunDevice& TunDevice::operator=(TunDevice&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    name_ = std::move(other.name_);
    ifindex_ = std::exchange(other.ifindex_, 0);
  }
  return *this;
}

// A clean stop deletes the device: not persistent any more, the last fd closes.
TunDevice::~TunDevice() {
  if (fd_ < 0) return;
  ioctl(fd_, TUNSETPERSIST, 0);
  ::close(fd_);
}

}  // namespace mlink::nl
