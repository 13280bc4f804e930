// sessions.h - one BFD session per (peer, link), and what the agent makes of
// each: whether the link is proven, its hold-down after a repair (damping),
// its state changes.
//
// The sessions themselves run in a SessionDriver (Liveness, over sockets; a
// fake in tests). With no driver (BFD disabled), every link counts as proven
// and carrier and neighbour decide alone.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>

#include "agent/topology.h"
#include "bfd/session.h"
#include "common/ip.h"
#include "common/result.h"
#include "linkset/damping.h"
#include "proto/bfd/codec.h"

namespace mlink::agent {

// Which session a peer's link uses: over the link's IPv4 next hop when it has
// one, else IPv6 (both ends pick alike).
struct SessionKey {
  PeerKey peer;
  size_t link = 0;
  IpAddr remote;
  auto operator<=>(const SessionKey&) const = default;
};
SessionKey session_key(const PeerKey& peer, const PeerLink& link);
// Every slot of every peer looks its session up on each rewrite (4,000 at a carrier loss
// with 1,000 peers): hashed, not ordered.
struct SessionKeyHash {
  size_t operator()(const SessionKey& k) const;
};

struct SessionTarget {
  std::string device;
  IpAddr local;      // this host's address on the link
  IpAddr remote;     // the peer's address on the link
  std::string name;  // for logs, e.g. "10.88.0.2 via eth1"
};

struct SessionInfo {
  bool up = false;
  bool lossy = false;  // Up, but losing echoes
  bfd::State state = bfd::State::Down;
  bfd::Diag diag = bfd::Diag::None;
  bool echo_active = false;
  uint64_t echo_rtt_us = 0;
  unsigned echo_lost = 0;   // of the last bfd::EchoLoss::kWindow
  uint32_t echo_slot = 0;   // its ml_echo_seen entry + 1 (group echo); 0: none
  bool echo_group = false;  // the echo that proves it is the link's group echo
};

class SessionDriver {
 public:
  using Id = uint64_t;
  virtual ~SessionDriver() = default;
  virtual Result<Id> add(const SessionTarget& t) = 0;
  virtual void remove(Id id) = 0;  // tells the peer (AdminDown) when the session is not Down
  virtual SessionInfo info(Id id) const = 0;
};

class SessionTable {
 public:
  using Clock = std::function<uint64_t()>;  // monotonic microseconds
  SessionTable(SessionDriver* driver, Clock now);

  bool enabled() const { return driver_ != nullptr; }
  // Starts the sessions in want that are missing, ends those no longer wanted.
  void sync(const std::map<SessionKey, SessionTarget>& want);
  std::optional<SessionKey> key_of(SessionDriver::Id id) const;
  std::optional<SessionInfo> info(const SessionKey& key) const;

  // A session's link went out of service (failed) or came back: the hold-down
  // learns of it. Returns "; in service after a N ms hold-down" for the log
  // when a hold-down now runs.
  std::string on_transition(const SessionKey& key, const bfd::Transition& t);
  std::string on_loss(const SessionKey& key, bool lossy);
  // Up, not lossy, and past its hold-down.
  bool proven(const SessionKey& key);
  uint64_t hold_down_us(const SessionKey& key);
  uint64_t state_changes(const SessionKey& key) const;
  size_t size() const { return ids_.size(); }

 private:
  std::string note_health(const SessionKey& key, bool failed);

  SessionDriver* driver_;
  Clock now_;
  std::unordered_map<SessionKey, SessionDriver::Id, SessionKeyHash> ids_;
  std::map<SessionDriver::Id, SessionKey> keys_;
  std::unordered_map<SessionKey, linkset::Damping, SessionKeyHash> damping_;
  std::unordered_map<SessionKey, uint64_t, SessionKeyHash> changes_;
};

}  // namespace mlink::agent
