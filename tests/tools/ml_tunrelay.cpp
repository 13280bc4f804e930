// ml-tunrelay - an L3 point-to-point link between two network namespaces for the test beds:
// a tun device in each (no MAC, NOARP, POINTOPOINT: what an L3 tunnel or a PPP-like link looks
// like to mlink), joined by this process copying every packet from one device's fd to the
// other's. This kernel has no ipip, gre, sit or wireguard, and a veth always has a MAC.
//
//   ml-tunrelay NETNS_A DEV_A NETNS_B DEV_B
//
// The devices are not persistent: they go when the relay ends (SIGTERM, or its bed's cleanup),
// which is also how a test cuts the link. Prints "ready" once both exist. Packets are copied
// as they come, a bounded batch per device per wakeup so neither direction starves the other;
// a write that fails (the other side's queue full) drops the packet, as a wire would.
#include <fcntl.h>
#include <fmt/core.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>

namespace {

volatile sig_atomic_t g_stop = 0;

[[noreturn]] void die(const std::string& what) {
  fmt::print(stderr, "ml-tunrelay: {}: {}\n", what, std::strerror(errno));
  std::exit(1);
}

// A tun device named dev in the network namespace netns (a name under /run/netns). The fd
// stays valid in whatever namespace this process is in afterwards.
int open_in(const std::string& netns, const std::string& dev) {
  std::string path = "/run/netns/" + netns;
  int ns = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) die("open " + path);
  if (setns(ns, CLONE_NEWNET) < 0) die("setns " + path);
  close(ns);
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) die("open /dev/net/tun");
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_TUN_EXCL;
  std::strncpy(ifr.ifr_name, dev.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("create tun " + dev + " in " + netns);
  return fd;
}

struct Side {
  int fd = -1;
  uint64_t packets = 0, dropped = 0;
};

// Up to kBatch packets from `from` to `to`; false when `from` has nothing more.
bool copy_some(Side& from, Side& to) {
  constexpr int kBatch = 64;
  static std::array<uint8_t, 65536> buf;
  for (int i = 0; i < kBatch; i++) {
    ssize_t n = read(from.fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return false;
      die("read");
    }
    if (write(to.fd, buf.data(), static_cast<size_t>(n)) != n)
      from.dropped++;
    else
      from.packets++;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    fmt::print(stderr, "usage: ml-tunrelay NETNS_A DEV_A NETNS_B DEV_B\n");
    return 2;
  }
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  std::signal(SIGINT, [](int) { g_stop = 1; });
  Side a{open_in(argv[1], argv[2])}, b{open_in(argv[3], argv[4])};
  fmt::print("ready\n");
  std::fflush(stdout);
  while (!g_stop) {
    pollfd p[2] = {{a.fd, POLLIN, 0}, {b.fd, POLLIN, 0}};
    if (poll(p, 2, 1000) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    bool more = true;
    while (more && !g_stop) {  // both directions in turn until both are empty
      bool ab = copy_some(a, b);
      bool ba = copy_some(b, a);
      more = ab || ba;
    }
  }
  fmt::print("a->b {} packets ({} dropped), b->a {} packets ({} dropped)\n", a.packets, a.dropped,
             b.packets, b.dropped);
  return 0;
}
