// transport.h - BFD's UDP sockets on one link (RFC 5881).
//
// Single-hop BFD runs on UDP 3784, sent with TTL/hop limit 255 and accepted
// only with 255 (the GTSM check of RFC 5881 §5: a packet from farther than
// one hop cannot arrive with 255). Both sockets are bound to the link device,
// so a session's packets leave and arrive on its own link whatever the
// routing table says; that is what lets BFD prove the link itself.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/ip.h"
#include "common/result.h"
#include "common/sockaddr.h"
#include "proto/bfd/codec.h"  // kControlPort

namespace mlink::bfd {

constexpr uint16_t kEchoPort = 3785;  // RFC 5881 §4
constexpr int kHopLimit = 255;

// A control packet (at most 52 bytes with Meticulous Keyed SHA1) or an echo
// (32), queued to send: size, then the bytes.
struct Bytes64 {
  uint8_t size = 0;
  std::array<uint8_t, 64> data{};
};

struct Datagram {
  std::vector<uint8_t> bytes;
  IpAddr src;
  uint16_t sport = 0;
};

class LinkSocket {
 public:
  // Receives on local:port, sends from local:<49152..65535> (RFC 5881 §4).
  // filter_fd: a socket filter for both sockets (the datapath's guard), or -1.
  static Result<LinkSocket> open(const std::string& device, const IpAddr& local,
                                 uint16_t port = kControlPort, int filter_fd = -1);
  LinkSocket(LinkSocket&&) noexcept;
  LinkSocket& operator=(LinkSocket&&) noexcept;
  ~LinkSocket();

  int fd() const { return rx_; }  // non-blocking; poll for readability
  uint16_t source_port() const { return sport_; }
  Status send(const IpAddr& dst, std::span<const uint8_t> bytes, uint16_t dport = kControlPort);
  // Several at once (sendmmsg); returns how many failed, each logged at debug level.
  size_t send_many(std::span<const OutDatagram> out);
  // The next queued datagram, or nullopt when there is none. Datagrams that
  // did not arrive with TTL/hop limit 255 are dropped and counted.
  std::optional<Datagram> receive();
  // What is queued, up to one batch of rx (one recvmmsg), likewise checked.
  std::span<const BatchReceiver::Datagram> receive_batch(BatchReceiver& rx, bool* more);
  uint64_t dropped_hop_limit() const { return dropped_hop_limit_; }
  void close() { close_all(); }  // fd() is -1 after it

 private:
  LinkSocket(int rx, int tx, uint16_t sport, int family);
  void close_all();
  int rx_ = -1;
  int tx_ = -1;
  uint16_t sport_ = 0;
  int family_ = 0;
  uint64_t dropped_hop_limit_ = 0;
};

// The Echo function's socket on one link (RFC 5880 §6.4, RFC 5881 §4): sends
// to the peer's port 3785 from an ephemeral port (never 3785, so two
// reflectors cannot bounce a packet forever); the peer's datapath swaps
// addresses and ports and sends it straight back, TTL still 255.
class EchoSocket {
 public:
  static Result<EchoSocket> open(const std::string& device, const IpAddr& local,
                                 int filter_fd = -1);
  EchoSocket(EchoSocket&&) noexcept;
  EchoSocket& operator=(EchoSocket&&) noexcept;
  ~EchoSocket();

  int fd() const { return fd_; }
  void close();  // fd() is -1 after it
  Status send(const IpAddr& dst, std::span<const uint8_t> bytes);
  size_t send_many(std::span<const OutDatagram> out);
  std::optional<Datagram> receive();  // only what came back with TTL 255
  std::span<const BatchReceiver::Datagram> receive_batch(BatchReceiver& rx, bool* more);

 private:
  explicit EchoSocket(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace mlink::bfd
