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

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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
  using Id = uint64_t;
  using OnChange = std::function<void(Id target, const bfd::Transition&)>;

  static std::unique_ptr<Liveness> create(const config::Bfd& cfg, OnChange on_change);
  ~Liveness();

  Status attach(sd_event* loop);  // runs the sessions on the loop
  // Sessions come and go with discovery; a socket, once open, stays.
  Result<Id> add(const Target& t);
  void remove(Id target);
  bool up(Id target) const;
  const bfd::Session& session(Id target) const { return entries_.at(target).session; }
  // Dropped packets by bfd::Reject, and at kBadHopLimit those that did not
  // arrive with TTL 255.
  static constexpr size_t kBadHopLimit = static_cast<size_t>(bfd::Reject::Replay) + 1;
  static constexpr size_t kRejects = kBadHopLimit + 1;
  std::array<uint64_t, kRejects> rejected() const;
  uint64_t rx_unmatched() const { return rx_unmatched_; }

 private:
  struct Entry {
    Target target;
    bfd::Session session;
    size_t socket;                   // index into sockets_
    std::optional<uint32_t> rx_seq;  // last authenticated sequence number received
  };
  Liveness(const config::Bfd& cfg, OnChange on_change);
  static int on_readable(sd_event_source*, int, uint32_t, void*);
  static int on_timer(sd_event_source*, uint64_t, void*);
  Status watch(size_t socket);
  void receive(size_t socket);
  void reject(bfd::Reject r, const IpAddr& from);
  void deliver(size_t socket, const bfd::Datagram& d, uint64_t now);
  void changed(Id id, const bfd::Transition& tr);
  void run_due(uint64_t now);
  void send_due(Id target, uint64_t now);
  void rearm();
  uint64_t now() const;

  config::Bfd cfg_;
  OnChange on_change_;
  std::map<Id, Entry> entries_;
  Id next_id_ = 0;
  uint32_t disc_base_ = 0;
  std::vector<bfd::LinkSocket> sockets_;
  std::map<std::pair<std::string, IpAddr>, size_t> socket_index_;  // (device, local)
  sd_event* loop_ = nullptr;
  sd_event_source* timer_ = nullptr;
  std::vector<sd_event_source*> io_;
  bfd::KeyRing keys_;  // empty: unauthenticated (config allowed it)
  uint32_t tx_seq_ = 0;
  std::array<uint64_t, kRejects> rejected_{};
  uint64_t rx_unmatched_ = 0;  // from an address no session of that socket talks to
};

}  // namespace mlink::agent
