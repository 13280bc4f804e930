// tun.h - the ML device: a tun (L3, IFF_TUN|IFF_NO_PI) owned by mlinkd.
//
// Carrier follows the open file descriptor, so ml0 is UP/LOWER_UP exactly
// while mlinkd runs. Not persistent: the device disappears when the fd closes.
#pragma once

#include <string>

#include "common/result.h"

namespace mlink::nl {

class TunDevice {
 public:
  // Fails with EEXIST-style error if a device of that name already exists.
  // The device is persistent: it outlives a crashed agent, so the datapath
  // attached to it keeps forwarding until the next agent adopts it.
  static Result<TunDevice> create(const std::string& name);
  // Attaches to the persistent tun a previous agent left behind.
  static Result<TunDevice> adopt(const std::string& name);
  // True when name is a tun device.
  static bool is_tun(const std::string& name);
  TunDevice(TunDevice&&) noexcept;
  TunDevice& operator=(TunDevice&&) noexcept;
  ~TunDevice();

  int fd() const { return fd_; }  // non-blocking; packets the egress passes arrive here
  const std::string& name() const { return name_; }
  int ifindex() const { return ifindex_; }

 private:
  TunDevice(int fd, std::string name, int ifindex);
  static Result<TunDevice> open_tun(const std::string& name, bool exclusive);
  int fd_ = -1;
  std::string name_;
  int ifindex_ = 0;
};

}  // namespace mlink::nl
