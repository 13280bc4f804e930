// liveness.h - which links are proven to work in both directions.
//
// One single-hop BFD session (RFC 5880/5881) per (peer, link), over sockets
// bound to the link, shared by every session that uses the same local
// address. A link may carry a peer's traffic only while that session is Up,
// so a one-way silent failure takes the link out on both ends within the
// detection time (30 ms × 3 by default), before TCP's 200 ms minimum RTO.
// Everything runs on the agent's event loop: one io source per socket and
// one timer armed at the earliest session deadline.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bfd/session.h"
#include "bfd/transport.h"
#include "common/ip.h"
#include "common/result.h"
#include "config/config.h"

struct sd_event;
struct sd_event_source;

namespace mlink::agent {

class Liveness {
 public:
  struct Target {  // one (peer, link) pair
    std::string device;
    IpAddr local;      // this host's address on the link
    IpAddr remote;     // the peer's address on the link
    std::string name;  // for logs, e.g. "10.88.0.2 via eth1"
  };
  using OnChange = std::function<void(size_t target, const bfd::Transition&)>;

  static Result<std::unique_ptr<Liveness>> create(const config::Bfd& cfg,
                                                  std::vector<Target> targets, OnChange on_change);
  ~Liveness();

  Status attach(sd_event* loop);  // starts the sessions
  bool up(size_t target) const;
  const bfd::Session& session(size_t target) const { return sessions_[target]; }
  uint64_t rx_rejected() const { return rx_rejected_; }
  uint64_t rx_unmatched() const { return rx_unmatched_; }

 private:
  Liveness(std::vector<Target> targets, OnChange on_change);
  static int on_readable(sd_event_source*, int, uint32_t, void*);
  static int on_timer(sd_event_source*, uint64_t, void*);
  void receive(size_t socket);
  void deliver(size_t socket, const bfd::Datagram& d, uint64_t now);
  void run_due(uint64_t now);
  void send_due(size_t target, uint64_t now);
  void rearm();
  uint64_t now() const;

  std::vector<Target> targets_;
  std::vector<bfd::Session> sessions_;
  std::vector<size_t> socket_of_;  // target -> index into sockets_
  std::vector<bfd::LinkSocket> sockets_;
  OnChange on_change_;
  sd_event* loop_ = nullptr;
  sd_event_source* timer_ = nullptr;
  std::vector<sd_event_source*> io_;
  uint64_t rx_rejected_ = 0;   // malformed or failing the codec's checks
  uint64_t rx_unmatched_ = 0;  // from an address no session of that socket talks to
};

}  // namespace mlink::agent
