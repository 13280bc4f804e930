// replay.h - sequence numbers of the topology protocol (docs/PROTOCOL.md, "Replay").
//
// A sender numbers its packets epoch << 32 | counter, one sequence for all its
// links. The epoch is the wall-clock second after the agent started, so a
// restarted agent continues above everything it sent before without keeping
// state on disk. A receiver keeps, per (sender, key id), the highest number
// accepted and a 64-packet window below it for packets reordered across links.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "proto/topo/codec.h"

namespace mlink::topo {

// Sender side. The agent picks epoch = (wall-clock seconds now) + 1 and sends
// nothing before the wall clock reaches it (< 1 s), so no two runs of a node
// share an epoch and each run's numbers are above the previous run's.
class Sequencer {
 public:
  explicit Sequencer(uint32_t epoch) : epoch_(epoch) {}
  // now_s: wall-clock seconds. A counter that would wrap moves to a new
  // epoch instead, never below the clock, so a later restart still wins.
  uint64_t next(uint32_t now_s);
  uint32_t epoch() const { return epoch_; }

 private:
  uint32_t epoch_;
  uint64_t counter_ = 0;  // next counter value; 2^32 means "epoch exhausted"
};

// Receiver side. Call accept() only for packets whose MAC verified: it
// records the number, so a forged packet must never reach it.
//
// Bounded: at most `capacity` (sender, key id) states. Past that, the state
// of the sender that has gone longest without an accepted packet is dropped
// (counted in evicted()). Only key holders create state, so this bounds what a
// buggy or hostile key holder minting node ids can make us keep; the price is
// that an evicted sender's recorded packets could be accepted once more, which
// needs `capacity` newer identities, i.e. a key holder, who can forge anything
// anyway. The default holds two key ids for every node discovery can hold.
class ReplayGuard {
 public:
  static constexpr uint64_t kWindow = 64;
  static constexpr size_t kDefaultCapacity = 2 * 16384;

  ReplayGuard() = default;
  explicit ReplayGuard(size_t capacity) : capacity_(capacity ? capacity : 1) {}

  // Fresh: seq is new for (node_id, key_id), above the highest accepted or within kWindow
  // below it and not seen yet; it is recorded. Replay: seen before. Stale: kWindow or more
  // below the highest, so whether it was seen is not known (a packet that waited, e.g. for its
  // next hop to resolve, while newer ones went past, or a sender whose numbers restarted
  // below). now_us: when (for expire_idle).
  enum class Verdict { Fresh, Replay, Stale };
  Verdict judge(std::string_view node_id, KeyId key_id, uint64_t seq, uint64_t now_us = 0);
  bool accept(std::string_view node_id, KeyId key_id, uint64_t seq, uint64_t now_us = 0) {
    return judge(node_id, key_id, seq, now_us) == Verdict::Fresh;
  }
  // Drops the state of a node: it left the neighbour table (its hold time passed with no
  // packet accepted). This is the rule for a sender whose numbers restart below what was
  // accepted (its clock stepped back, or one packet came with a number near 2^64): refused
  // until its neighbour entry expires, then taken as new.
  void forget(std::string_view node_id);
  // Drops the state of a key id that was removed (a rotation's last step).
  void forget_key(KeyId key_id);
  // Drops every state that accepted nothing for idle_us (senders no table holds: the
  // same rule, for those that never got or no longer have a neighbour entry). Returns how many.
  size_t expire_idle(uint64_t now_us, uint64_t idle_us);
  size_t size() const { return state_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t evicted() const { return evicted_; }
  uint64_t forgotten() const { return forgotten_; }  // by forget, forget_key and expire_idle

 private:
  using Key = std::pair<std::string, KeyId>;
  struct Window {
    uint64_t highest = 0;
    uint64_t seen = 0;     // bit i: highest - i was accepted
    uint64_t used = 0;     // when a packet was last accepted (a tick of this guard)
    uint64_t used_us = 0;  // and in microseconds (the caller's clock)
  };
  using State = std::map<Key, Window, std::less<>>;
  void touch(State::iterator it, uint64_t now_us);
  State::iterator erase(State::iterator it);

  size_t capacity_ = kDefaultCapacity;
  uint64_t tick_ = 0;
  uint64_t evicted_ = 0;
  uint64_t forgotten_ = 0;
  State state_;
  std::map<uint64_t, Key> by_use_;  // used -> key: the least recently used first
};

}  // namespace mlink::topo
