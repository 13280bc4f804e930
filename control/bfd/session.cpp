// session.cpp - the RFC 5880 state machine and timers of one BFD session.
#include "bfd/session.h"

#include <algorithm>
#include <utility>

namespace mlink::bfd {

Session::Session(const SessionConfig& cfg, std::function<uint32_t()> rng)
    : cfg_(cfg), rng_(std::move(rng)), default_rng_(cfg.my_disc) {
  cfg_.desired_min_tx_us = std::max<uint32_t>(cfg_.desired_min_tx_us, 1);  // §4.1: 0 reserved
  cfg_.detect_mult = std::max<uint8_t>(cfg_.detect_mult, 1);
  update_intervals();
}

// ---- reception (§6.8.6) ----------------------------------------------------

// The discard rules of §6.8.6 that the session can judge. Most are the
// codec's and the demultiplexer's already; re-checking them is cheap.
bool Session::acceptable(const RxPacket& p) const {
  if (p.detect_mult == 0 || p.my_disc == 0) return false;
  // "If the Your Discriminator field is nonzero, it MUST be used to select
  // the session": a nonzero value that is not ours is someone else's packet.
  if (p.your_disc != 0 && p.your_disc != cfg_.my_disc) return false;
  // "If the Your Discriminator field is zero and the State field is not Down
  // or AdminDown, the packet MUST be discarded."
  if (p.your_disc == 0 && p.state != State::Down && p.state != State::AdminDown) return false;
  // "If the A bit is set and no authentication is in use ... If the A bit is
  // clear and authentication is in use, the packet MUST be discarded."
  return p.auth_present == cfg_.auth;
}

// "Set bfd.RemoteDiscr to the value of My Discriminator. Set
// bfd.RemoteState ... bfd.RemoteDemandMode ... bfd.RemoteMinRxInterval";
// the Final ends our Poll; then the tx interval (§6.8.2) and detection time
// (§6.8.4, computed on demand) follow the new values.
void Session::update_remote(const RxPacket& p) {
  const uint64_t old_interval = tx_interval_us();
  remote_disc_ = p.my_disc;
  remote_state_ = p.state;
  remote_demand_ = p.demand;
  remote_min_rx_us_ = p.required_min_rx_us;
  remote_detect_mult_ = p.detect_mult;
  remote_desired_tx_us_ = p.desired_min_tx_us;
  // "If a Poll Sequence is being transmitted by the local system and the
  // Final (F) bit in the received packet is set, the Poll Sequence MUST be
  // terminated."
  if (p.final) on_final();
  reschedule_if_sooner(old_interval);
}

// §6.5/§6.8.3: the peer has seen our new intervals; the held ones are
// released. A Final that can only answer an older Poll (intervals changed
// after that Poll left) restarts the sequence instead.
void Session::on_final() {
  if (!polling_ || !poll_sent_) return;
  poll_sent_ = false;
  if (poll_stale_) {
    poll_stale_ = false;
    return;
  }
  polling_ = false;
  used_tx_us_ = adv_tx_us_;
  used_rx_us_ = adv_rx_us_;
}

std::optional<Transition> Session::on_packet(const RxPacket& p, uint64_t now_us) {
  if (!acceptable(p)) {
    ++rx_discarded_;
    return std::nullopt;
  }
  update_remote(p);
  // "If bfd.SessionState is AdminDown: Discard the packet"
  if (state_ == State::AdminDown) {
    ++rx_discarded_;
    return std::nullopt;
  }
  ++rx_packets_;
  // "If the packet was not discarded, it is for the purposes of the
  // Detection Time expiration rules considered to have been received."
  detect_armed_ = true;
  last_rx_us_ = now_us;
  // "If the Poll (P) bit is set, send a BFD Control packet to the remote
  // system with the Poll (P) bit clear, and the Final (F) bit set"
  if (p.poll) {
    if (!final_owed_ && !urgent_) owed_at_us_ = now_us;
    final_owed_ = true;
  }
  // "If received state is AdminDown: If bfd.SessionState is not Down, Set
  // bfd.LocalDiag to 3 (Neighbor signaled session down), bfd.SessionState to
  // Down"
  if (p.state == State::AdminDown) {
    if (state_ == State::Down) return std::nullopt;
    return change_state(State::Down, Diag::NeighborDown, now_us);
  }
  std::optional<State> next;
  switch (state_) {
    case State::Down:
      next = handle_down(p.state);
      break;
    case State::Init:
      next = handle_init(p.state);
      break;
    case State::Up:
      next = handle_up(p.state);
      break;
    case State::AdminDown:
      break;
  }
  if (!next) return std::nullopt;
  return change_state(*next, *next == State::Down ? Diag::NeighborDown : local_diag_, now_us);
}

// "If bfd.SessionState is Down: If received State is Down, Set
// bfd.SessionState to Init; Else if received State is Init, Set
// bfd.SessionState to Up"
std::optional<State> Session::handle_down(State remote) {
  if (remote == State::Down) return State::Init;
  if (remote == State::Init) return State::Up;
  return std::nullopt;
}

// "Else if bfd.SessionState is Init: If received State is Init or Up, Set
// bfd.SessionState to Up"
std::optional<State> Session::handle_init(State remote) {
  if (remote == State::Init || remote == State::Up) return State::Up;
  return std::nullopt;
}

// "Else (bfd.SessionState is Up): If received State is Down, Set
// bfd.LocalDiag to 3 (Neighbor signaled session down), Set bfd.SessionState
// to Down"
std::optional<State> Session::handle_up(State remote) {
  if (remote == State::Down) return State::Down;
  return std::nullopt;
}

// ---- timers ----------------------------------------------------------------

// §6.8.4: "if a period of time equal to the Detection Time passes without
// receiving a BFD Control packet from the remote system, and
// bfd.SessionState is Init or Up, the session has gone down -- the local
// system MUST set bfd.SessionState to Down and bfd.LocalDiag to 1". §6.8.1:
// bfd.RemoteDiscr "MUST be set to zero" then, whatever the state.
std::optional<Transition> Session::on_timer(uint64_t now_us) {
  if (!detect_armed_ || now_us < last_rx_us_ + detect_time_us()) return std::nullopt;
  detect_armed_ = false;
  remote_disc_ = 0;
  if (state_ != State::Init && state_ != State::Up) return std::nullopt;
  return change_state(State::Down, Diag::ControlDetectExpired, now_us);
}

uint64_t Session::detect_time_us() const {
  // "the value of Detect Mult received from the remote system, multiplied by
  // the agreed transmit interval of the remote system (the greater of
  // bfd.RequiredMinRxInterval and the last received Desired Min TX Interval)"
  return uint64_t{remote_detect_mult_} * std::max(used_rx_us_, remote_desired_tx_us_);
}

uint64_t Session::tx_interval_us() const {
  // §6.8.7: "the larger of bfd.DesiredMinTxInterval and bfd.RemoteMinRxInterval"
  return std::max(used_tx_us_, remote_min_rx_us_);
}

// §6.8.3. Advertised intervals follow the configuration at once (outside Up
// the tx floor is down_min_tx_us). Those in force follow at once when not Up;
// in Up a change starts a Poll Sequence and only the safe direction applies
// now: "If bfd.DesiredMinTxInterval is increased and bfd.SessionState is Up,
// the actual transmission interval used MUST NOT change until the Poll
// Sequence described above has terminated"; "If bfd.RequiredMinRxInterval is
// reduced and bfd.SessionState is Up, the previous value ... MUST be used
// when calculating the Detection Time".
void Session::update_intervals() {
  const uint64_t old_interval = tx_interval_us();
  uint32_t tx = cfg_.desired_min_tx_us;
  const uint32_t rx = cfg_.required_min_rx_us;
  if (state_ != State::Up) {
    tx = std::max(tx, cfg_.down_min_tx_us);
    used_tx_us_ = tx;
    used_rx_us_ = rx;
  } else if (tx != adv_tx_us_ || rx != adv_rx_us_) {
    used_tx_us_ = std::min(used_tx_us_, tx);
    used_rx_us_ = std::max(used_rx_us_, rx);
    if (polling_ && poll_sent_) poll_stale_ = true;
    polling_ = true;  // "a Poll Sequence MUST be initiated"
  }
  adv_tx_us_ = tx;
  adv_rx_us_ = rx;
  reschedule_if_sooner(old_interval);
}

// §6.8.3: when the interval shrinks, "the local system cannot wait longer
// than the new interval between the previous packet transmission and the
// next one" (a time already past means: send now).
void Session::reschedule_if_sooner(uint64_t old_interval_us) {
  const uint64_t interval = tx_interval_us();
  if (tx_packets_ == 0 || interval >= old_interval_us) return;
  next_tx_us_ = std::min(next_tx_us_, last_tx_us_ + jittered(interval));
}

bool Session::set_timers(uint32_t desired_min_tx_us, uint32_t required_min_rx_us) {
  if (desired_min_tx_us == 0) return false;
  cfg_.desired_min_tx_us = desired_min_tx_us;
  cfg_.required_min_rx_us = required_min_rx_us;
  update_intervals();
  return true;
}

bool Session::set_detect_mult(uint8_t mult) {
  if (mult == 0) return false;
  cfg_.detect_mult = mult;  // §6.8.12: "no Poll Sequence is necessary"
  return true;
}

// ---- state changes ---------------------------------------------------------

// Every change is announced at once (FRR does the same): the peer need not
// wait a slow Down-state interval to learn of it.
std::optional<Transition> Session::change_state(State to, Diag diag, uint64_t now_us) {
  Transition t{state_, to, to == State::Up ? Diag::None : diag, now_us};
  state_ = to;
  local_diag_ = t.diag;
  ++state_changes_;
  if (to != State::Up) polling_ = poll_sent_ = poll_stale_ = false;
  if (to == State::AdminDown) detect_armed_ = false;
  update_intervals();
  if (!final_owed_ && !urgent_) owed_at_us_ = now_us;
  urgent_ = true;
  return t;
}

std::optional<Transition> Session::echo_failed(uint64_t now_us) {
  if (state_ != State::Up) return std::nullopt;
  detect_armed_ = false;
  return change_state(State::Down, Diag::EchoFailed, now_us);
}

Session::Snapshot Session::snapshot() const {
  return {cfg_.my_disc, remote_disc_, remote_detect_mult_, remote_min_rx_us_,
          remote_desired_tx_us_};
}

std::optional<Transition> Session::resume(const Snapshot& s, uint64_t now_us) {
  if (state_ != State::Down || rx_packets_ || s.my_disc != cfg_.my_disc || !s.remote_disc ||
      !s.remote_detect_mult)
    return std::nullopt;
  remote_disc_ = s.remote_disc;
  remote_state_ = State::Up;
  remote_detect_mult_ = s.remote_detect_mult;
  remote_min_rx_us_ = s.remote_min_rx_us;
  remote_desired_tx_us_ = s.remote_desired_tx_us;
  detect_armed_ = true;
  last_rx_us_ = now_us;
  return change_state(State::Up, Diag::None, now_us);
}

// §6.8.16: "If enabling session: Set bfd.SessionState to Down. Else: Set
// bfd.SessionState to AdminDown, Set bfd.LocalDiag to an appropriate value".
// Packets with state AdminDown keep going at the slow rate ("MAY be
// transmitted indefinitely").
std::optional<Transition> Session::set_admin_down(bool down, uint64_t now_us, Diag diag) {
  if (down == (state_ == State::AdminDown)) return std::nullopt;
  if (down) return change_state(State::AdminDown, diag, now_us);
  return change_state(State::Down, Diag::None, now_us);
}

// ---- transmission (§6.8.7) -------------------------------------------------

// "A system MUST NOT transmit BFD Control packets if bfd.RemoteDiscr is zero
// and the system is taking the Passive role."
bool Session::may_transmit() const {
  return !(cfg_.passive && remote_disc_ == 0);
}

bool Session::periodic_enabled() const {
  // "MUST NOT periodically transmit BFD Control packets if
  // bfd.RemoteMinRxInterval is zero", nor "if Demand mode is active on the
  // remote system ... and a Poll Sequence is not being transmitted".
  if (remote_min_rx_us_ == 0) return false;
  const bool remote_demand = remote_demand_ && state_ == State::Up && remote_state_ == State::Up;
  return !remote_demand || polling_;
}

// "the interval MUST be reduced by a random value of 0 to 25%"; "If
// bfd.DetectMult is equal to 1, the interval ... MUST be no more than 90% of
// the negotiated transmission interval, and MUST be no less than 75%".
uint64_t Session::jittered(uint64_t interval_us) {
  const uint32_t r = rng_ ? rng_() : static_cast<uint32_t>(default_rng_());
  const uint64_t cut = cfg_.detect_mult == 1 ? 1000 + r % 1501 : r % 2501;  // 1/10000ths
  return interval_us - interval_us * cut / 10000;
}

std::optional<TxPacket> Session::poll_tx(uint64_t now_us) {
  if (!may_transmit()) return std::nullopt;
  const bool owed = final_owed_ || urgent_;
  if (!owed && (!periodic_enabled() || now_us < next_tx_us_)) return std::nullopt;
  TxPacket t;
  t.state = state_;
  t.diag = local_diag_;
  // §6.5: "A BFD Control packet MUST NOT have both the Poll (P) and Final
  // (F) bits set": the Final goes first, the Poll on the next periodic packet.
  t.final = final_owed_;
  t.poll = polling_ && !t.final;
  t.auth_present = cfg_.auth;
  t.detect_mult = cfg_.detect_mult;
  t.my_disc = cfg_.my_disc;
  t.your_disc = remote_disc_;
  t.desired_min_tx_us = adv_tx_us_;
  t.required_min_rx_us = adv_rx_us_;
  if (t.poll) poll_sent_ = true;
  final_owed_ = urgent_ = false;
  last_tx_us_ = now_us;
  next_tx_us_ = now_us + jittered(tx_interval_us());
  ++tx_packets_;
  return t;
}

uint64_t Session::next_deadline_us() const {
  uint64_t d = kNever;
  if (may_transmit()) {
    if (final_owed_ || urgent_)
      d = owed_at_us_;
    else if (periodic_enabled())
      d = next_tx_us_;
  }
  if (detect_armed_) d = std::min(d, last_rx_us_ + detect_time_us());
  return d;
}

}  // namespace mlink::bfd
