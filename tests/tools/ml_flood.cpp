// ml-flood - a junk UDP flood as fast as one core sends it, for the hostile-neighbour tests:
// one socket per target, each bound to its source address and sending with its TTL, served
// in turn a sendmmsg batch at a time for the given time. The payload is random bytes (drawn
// once, the first 8 bytes varied per datagram), so nothing it sends is a valid packet of any
// protocol.
//
//   ml-flood [--seconds S] [--size N] SRC,DST,PORT,TTL ...
//
// Prints one line per target: datagrams sent, and send errors (ENOBUFS and the like count,
// they do not stop the flood). Exits non-zero only when a socket cannot be set up.
#include <arpa/inet.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Target {
  std::string text;
  int fd = -1;
  sockaddr_storage dst{};
  socklen_t dst_len = 0;
  uint64_t sent = 0, errors = 0;
};

bool fill(const std::string& addr, uint16_t port, sockaddr_storage& ss, socklen_t& len) {
  std::memset(&ss, 0, sizeof(ss));
  auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, addr.c_str(), &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    len = sizeof(*s4);
    return true;
  }
  if (inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    len = sizeof(*s6);
    return true;
  }
  return false;
}

[[noreturn]] void die(const std::string& what) {
  fmt::print(stderr, "ml-flood: {}\n", what);
  std::exit(1);
}

Target open_target(const std::string& spec) {
  std::vector<std::string> f;
  std::stringstream in(spec);
  for (std::string part; std::getline(in, part, ',');) f.push_back(part);
  if (f.size() != 4) die("target '" + spec + "': want SRC,DST,PORT,TTL");
  Target t;
  t.text = spec;
  int port = std::stoi(f[2]), ttl = std::stoi(f[3]);
  sockaddr_storage src{};
  socklen_t src_len = 0;
  if (!fill(f[0], 0, src, src_len) || !fill(f[1], static_cast<uint16_t>(port), t.dst, t.dst_len))
    die("target '" + spec + "': bad address");
  int family = src.ss_family;
  t.fd = socket(family, SOCK_DGRAM, 0);
  if (t.fd < 0) die("socket: " + std::string(std::strerror(errno)));
  bool v4 = family == AF_INET;
  if (setsockopt(t.fd, v4 ? IPPROTO_IP : IPPROTO_IPV6, v4 ? IP_TTL : IPV6_UNICAST_HOPS, &ttl,
                 sizeof(ttl)) != 0)
    die("set TTL: " + std::string(std::strerror(errno)));
  if (bind(t.fd, reinterpret_cast<sockaddr*>(&src), src_len) != 0)
    die("bind " + f[0] + ": " + std::strerror(errno));
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ml-flood: junk UDP as fast as one core sends it"};
  double seconds = 4;
  size_t size = 64;
  std::vector<std::string> specs;
  app.add_option("--seconds", seconds, "how long")->check(CLI::Range(0.1, 600.0));
  app.add_option("--size", size, "payload bytes")->check(CLI::Range(8, 1400));
  app.add_option("targets", specs, "SRC,DST,PORT,TTL")->required();
  CLI11_PARSE(app, argc, argv);

  std::vector<Target> targets;
  for (const auto& s : specs) targets.push_back(open_target(s));
  constexpr size_t kBatch = 64;
  std::vector<std::vector<uint8_t>> payload(kBatch, std::vector<uint8_t>(size));
  std::mt19937_64 rng{std::random_device{}()};
  for (auto& p : payload)
    for (auto& b : p) b = static_cast<uint8_t>(rng());
  std::vector<iovec> iov(kBatch);
  std::vector<mmsghdr> msgs(kBatch);
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  uint64_t n = 0;
  while (std::chrono::steady_clock::now() < end) {
    for (auto& t : targets) {
      for (size_t i = 0; i < kBatch; i++) {
        uint64_t v = rng() ^ n++;
        std::memcpy(payload[i].data(), &v, sizeof(v));
        iov[i] = {payload[i].data(), size};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_name = &t.dst;
        msgs[i].msg_hdr.msg_namelen = t.dst_len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      int r = sendmmsg(t.fd, msgs.data(), kBatch, MSG_DONTWAIT);
      if (r > 0)
        t.sent += static_cast<uint64_t>(r);
      else
        t.errors++;
    }
  }
  uint64_t total = 0;
  for (const auto& t : targets) {
    fmt::print("{} sent {} errors {}\n", t.text, t.sent, t.errors);
    total += t.sent;
    close(t.fd);
  }
  fmt::print("total {} datagrams in {:.1f} s: {:.0f} per second\n", total, seconds,
             static_cast<double>(total) / seconds);
  return 0;
}
