// session.h - one BFD session: RFC 5880 asynchronous mode, single hop (RFC 5881).
//
// The state machine (§6.2), reception (§6.8.6), timers (§6.8.2-§6.8.4), Poll
// Sequences (§6.5) and transmission rules (§6.8.7) of one (peer, link) pair,
// modelled on FRR bfdd: one handler per state. The session is pure: no socket,
// no clock, no global randomness. Time comes in as a monotonic `now_us`, the
// jitter from an injected generator, packets in and out as plain structs (the
// caller converts to and from the wire codec, proto/bfd/codec.h).
//
// Driving it (the agent, one timer per session):
//   on a packet   t = on_packet(rx, now)   after decode() and the Your
//                 Discriminator lookup; then poll_tx(now) (a Final may be owed)
//   at deadline   t = on_timer(now); then poll_tx(now)
//   after either  re-arm the timer at next_deadline_us()
// A returned Transition is a state change to act on (link set, notification).
//
// What the caller owns: the checks of §6.8.6 that need no session (version,
// length, detect mult, M bit, My Discriminator; the codec), selecting the
// session by Your Discriminator (or by peer address and link when it is zero),
// verifying authentication and the TTL. The session re-checks the cheap ones.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>

#include "proto/bfd/codec.h"

namespace mlink::bfd {

// §6.8.1 state variables the operator sets. Intervals in microseconds.
struct SessionConfig {
  uint32_t desired_min_tx_us = 30000;   // bfd.DesiredMinTxInterval while Up
  uint32_t required_min_rx_us = 30000;  // bfd.RequiredMinRxInterval
  uint8_t detect_mult = 3;              // bfd.DetectMult
  uint32_t my_disc = 0;                 // bfd.LocalDiscr, nonzero and unique
  bool passive = false;                 // §6.1: send nothing until the peer is heard
  // §6.8.3: "When bfd.SessionState is not Up, the system MUST set
  // bfd.DesiredMinTxInterval to a value of not less than one second". The
  // advertised (and used) tx interval outside Up is max(desired, this). 1 s
  // is the RFC rule; mlink may lower it to bring links up faster.
  uint32_t down_min_tx_us = 1000000;
  // bfd.AuthType != 0: the caller signs and verifies; the session only
  // enforces that the A bit matches (§6.8.6).
  bool auth = false;
};

// The session speaks the codec's packet: what it receives has been decoded
// and validated by proto/bfd/codec.h; what it returns goes to encode() as is.
// A sent packet has C, D and M clear and no echo interval (no Echo function);
// A is set when the session is configured with authentication (the caller
// signs).
using RxPacket = ControlPacket;
using TxPacket = ControlPacket;

struct Transition {
  State from;
  State to;
  Diag diag;  // bfd.LocalDiag after the change (None on Up)
  uint64_t at_us;
};

class Session {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;

  // rng feeds the §6.8.7 jitter; without one, a generator seeded with
  // my_disc (deterministic, distinct per session).
  explicit Session(const SessionConfig& cfg, std::function<uint32_t()> rng = {});

  // §6.8.6 from "If the Your Discriminator field is nonzero..." on. The caller
  // has selected this session; a packet whose nonzero Your Discriminator is
  // not ours, whose A bit does not match, or that §6.8.6 says to discard is
  // counted in rx_discarded() and changes nothing (in AdminDown, as §6.8.6
  // orders, the bfd.Remote* variables are updated before the discard).
  std::optional<Transition> on_packet(const RxPacket& p, uint64_t now_us);

  // §6.8.4 detection time expiry. Transmission is poll_tx()'s.
  std::optional<Transition> on_timer(uint64_t now_us);

  // The packet to send now, if one is due: periodic (§6.8.7, jittered), a
  // Final owed to a Poll, or the first packet after a state change. Call
  // after on_packet/on_timer and whenever next_deadline_us() is reached.
  std::optional<TxPacket> poll_tx(uint64_t now_us);

  // The earliest time on_timer/poll_tx must run (kNever: nothing pending).
  // May be in the past: run them at once.
  uint64_t next_deadline_us() const;

  // §6.8.3: new intervals, advertised with a Poll Sequence when Up. Returns
  // false (and changes nothing) when desired_min_tx_us is 0 (§4.1: reserved).
  bool set_timers(uint32_t desired_min_tx_us, uint32_t required_min_rx_us);
  // §6.8.12: sent with the next packet, no Poll Sequence. False when 0.
  bool set_detect_mult(uint8_t mult);
  // §6.8.16 administrative control. diag: AdminDown, or PathDown when the
  // underlying path is known to have failed.
  std::optional<Transition> set_admin_down(bool down, uint64_t now_us, Diag diag = Diag::AdminDown);

  // §6.4: the Echo function (run by the caller) saw no echo come back in its
  // detection time: Up -> Down with diag EchoFailed.
  std::optional<Transition> echo_failed(uint64_t now_us);

  // What a restarted agent needs to carry on a session that was Up, so the
  // peer sees no change (same discriminators, no new three-way handshake).
  struct Snapshot {
    uint32_t my_disc = 0;
    uint32_t remote_disc = 0;
    uint8_t remote_detect_mult = 0;
    uint32_t remote_min_rx_us = 0;
    uint32_t remote_desired_tx_us = 0;
  };
  Snapshot snapshot() const;
  // From Down before any packet, with cfg.my_disc == s.my_disc: Up at once,
  // detection armed from now_us, the next packet sent at once.
  std::optional<Transition> resume(const Snapshot& s, uint64_t now_us);

  State state() const { return state_; }
  Diag local_diag() const { return local_diag_; }
  State remote_state() const { return remote_state_; }
  uint32_t my_disc() const { return cfg_.my_disc; }
  uint32_t remote_disc() const { return remote_disc_; }
  bool polling() const { return polling_; }
  // §6.8.4: remote Detect Mult x max(bfd.RequiredMinRxInterval in force, last
  // received Desired Min TX). 0 until a packet has been received.
  uint64_t detect_time_us() const;
  // §6.8.2/§6.8.7: max(bfd.DesiredMinTxInterval in force, bfd.RemoteMinRxInterval),
  // before jitter.
  uint64_t tx_interval_us() const;
  uint64_t state_changes() const { return state_changes_; }
  uint64_t rx_packets() const { return rx_packets_; }
  uint64_t rx_discarded() const { return rx_discarded_; }
  uint64_t tx_packets() const { return tx_packets_; }

 private:
  bool acceptable(const RxPacket& p) const;
  void update_remote(const RxPacket& p);
  void on_final();
  std::optional<State> handle_down(State remote);
  std::optional<State> handle_init(State remote);
  std::optional<State> handle_up(State remote);
  std::optional<Transition> change_state(State to, Diag diag, uint64_t now_us);
  void update_intervals();
  void reschedule_if_sooner(uint64_t old_interval_us);
  bool may_transmit() const;
  bool periodic_enabled() const;
  uint64_t jittered(uint64_t interval_us);

  SessionConfig cfg_;
  std::function<uint32_t()> rng_;
  std::minstd_rand default_rng_;

  // §6.8.1 state variables.
  State state_ = State::Down;
  State remote_state_ = State::Down;
  Diag local_diag_ = Diag::None;
  uint32_t remote_disc_ = 0;
  uint32_t remote_min_rx_us_ = 1;  // bfd.RemoteMinRxInterval, initially 1
  bool remote_demand_ = false;
  uint8_t remote_detect_mult_ = 0;
  uint32_t remote_desired_tx_us_ = 0;

  // Intervals advertised in our packets, and those in force (§6.8.3: an
  // increase of tx, or a decrease of rx, waits for the Poll's Final).
  uint32_t adv_tx_us_ = 0;
  uint32_t adv_rx_us_ = 0;
  uint32_t used_tx_us_ = 0;
  uint32_t used_rx_us_ = 0;

  // §6.5 Poll Sequence.
  bool polling_ = false;
  bool poll_sent_ = false;   // a packet with P left in this sequence
  bool poll_stale_ = false;  // intervals changed after a P left: poll again

  // Transmission.
  bool final_owed_ = false;  // §6.8.7: answer a Poll at once
  bool urgent_ = false;      // first packet after a state change
  uint64_t owed_at_us_ = 0;
  uint64_t next_tx_us_ = 0;
  uint64_t last_tx_us_ = 0;

  // Detection (§6.8.4): armed by every accepted packet.
  bool detect_armed_ = false;
  uint64_t last_rx_us_ = 0;

  uint64_t state_changes_ = 0;
  uint64_t rx_packets_ = 0;
  uint64_t rx_discarded_ = 0;
  uint64_t tx_packets_ = 0;
};

}  // namespace mlink::bfd
