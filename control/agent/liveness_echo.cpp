// liveness_echo.cpp - BFD echo (RFC 5880 §6.4, RFC 5881 §4) for an Up session: probing
// whether the peer's datapath reflects, sending at the configured interval, judging failure
// by unanswered echoes, and the reflected echoes coming back (tagged with our key).
#include <algorithm>

#include "agent/liveness.h"
#include "common/log.h"
#include "proto/bfd/echo.h"

namespace mlink::agent {

void Liveness::start_echo(Entry& e, uint64_t t) {
  e.echo = Echo::Probing;
  e.echo_since_us = e.echo_next_tx_us = t;
  e.echo_last_rx_us = 0;
  e.echo_unanswered = 0;
  e.burst.reset();
  start_group(e, t);
}

void Liveness::stop_echo(Entry& e) {
  stop_group(e);
  if (e.echo == Echo::Active)  // the control packets prove the link alone again
    e.session.set_timers(cfg_.interval_ms * 1000, cfg_.interval_ms * 1000);
  e.echo = Echo::Off;
}

uint64_t Liveness::echo_interval_us(const Entry& e) const {
  return std::max<uint64_t>(uint64_t{cfg_.interval_ms} * 1000, e.remote_echo_rx_us);
}

// A loss burst's rate: 1/kDivisor of the plain one, but never faster than the peer asked
// for (an older mlink or FRR asks for the plain rate or slower, and so gets no burst).
uint64_t Liveness::echo_burst_interval_us(const Entry& e) const {
  return std::max<uint64_t>(uint64_t{cfg_.interval_ms} * 1000 / bfd::EchoBurst::kDivisor,
                            e.remote_echo_rx_us);
}

uint64_t Liveness::next_echo_deadline(const Entry& e) const {
  if (e.group == Group::Active) return std::numeric_limits<uint64_t>::max();  // swept per socket
  uint64_t group_probe = e.group == Group::Probing ? e.group_since_us + kEchoProbeUsec
                                                   : std::numeric_limits<uint64_t>::max();
  switch (e.echo) {
    case Echo::Probing:
      return std::min({e.echo_next_tx_us, e.echo_since_us + kEchoProbeUsec, group_probe});
    case Echo::Active:
      if (e.echo_unanswered < cfg_.multiplier) return std::min(e.echo_next_tx_us, group_probe);
      return std::min({e.echo_next_tx_us, group_probe,
                       e.echo_last_rx_us + uint64_t{cfg_.multiplier} * echo_interval_us(e)});
    default:
      return std::numeric_limits<uint64_t>::max();
  }
}

void Liveness::run_echo(Id id, uint64_t t) {
  Entry& e = entries_.at(id);
  if (run_group(id, e, t)) return;
  if (e.echo == Echo::Probing && t >= e.echo_since_us + kEchoProbeUsec) {
    log::info("BFD {}: the peer advertises echo but reflects none; control packets only",
              e.target.name);
    e.echo = Echo::Unsupported;
    e.loss.reset();
    return;
  }
  // Failed: `multiplier` echoes sent since the last one came back, and the
  // detection time passed. Counting what was sent, not only the time, keeps
  // an agent that did not run (and so sent nothing) from failing sessions.
  if (e.echo == Echo::Active && e.echo_unanswered >= cfg_.multiplier &&
      t >= e.echo_last_rx_us + uint64_t{cfg_.multiplier} * echo_interval_us(e)) {
    if (auto tr = e.session.echo_failed(t)) changed(id, *tr);
    return;
  }
  if ((e.echo == Echo::Probing || e.echo == Echo::Active) && t >= e.echo_next_tx_us) {
    // The previous echo is not back: a loss burst, unless the link is already out for loss.
    bool missed = e.echo == Echo::Active && e.echo_unanswered > 0 && !e.loss.lossy();
    auto b = bfd::encode_echo({.my_disc = e.session.my_disc(), .seq = e.echo_seq, .sent_us = t},
                              echo_key_);
    queue(echo_tx_[e.socket], e.target.remote, b);
    e.loss.sent(e.echo_seq++);
    e.echo_unanswered++;
    bool burst = e.burst.active();
    e.echo_next_tx_us =
        t + e.burst.next_gap(missed, echo_interval_us(e), echo_burst_interval_us(e));
    if (!burst && e.burst.active())
      log::debug("BFD {}: an echo is missing; the next {} {} us apart", e.target.name,
                 bfd::EchoBurst::kLength, echo_burst_interval_us(e));
    if (e.echo != Echo::Active) return;
    if (auto lossy = e.loss.update(e.burst.grace(cfg_.multiplier)); lossy && on_loss_)
      on_loss_(id, *lossy, e.loss.lost());
  }
}

void Liveness::receive_echo(size_t socket) {
  if (echo_sockets_[socket].fd() < 0) return;  // released
  uint64_t t = now();
  bool more = true;
  for (int b = 0; b < kBatchesPerCallback && more; b++)
    for (const auto& d : echo_sockets_[socket].receive_batch(rx_batch_, &more))
      echo_back(socket, d, t);
}

// One reflected echo of ours: it proves the session's link. Only an echo tagged with our
// key counts, so an on-link host cannot keep a dead link "proven" by forging them.
void Liveness::echo_back(size_t socket, const BatchReceiver::Datagram& d, uint64_t t) {
  auto decoded = bfd::decode_echo(d.bytes, echo_key_);
  if (const auto* why = std::get_if<bfd::EchoReject>(&decoded)) {
    echo_refused_[static_cast<size_t>(*why)]++;
    return;
  }
  const auto* echo = &std::get<bfd::EchoPayload>(decoded);
  uint32_t disc = echo->my_disc;
  uint64_t sent = echo->sent_us;
  auto b = by_disc_.find(disc);
  if (b == by_disc_.end()) return;
  Entry& e = entries_.at(b->second);
  if (e.socket != socket || e.target.remote != d.meta.src) return;
  if (e.echo != Echo::Probing && e.echo != Echo::Active) return;
  e.echo_last_rx_us = t;
  e.echo_unanswered = 0;
  e.echo_rtt_us = t >= sent ? t - sent : 0;
  e.loss.received(echo->seq);
  if (e.echo == Echo::Probing) {
    e.echo = Echo::Active;
    e.session.set_timers(std::max(kEchoControlTxUs, cfg_.interval_ms * 1000),
                         cfg_.interval_ms * 1000);
    log::info(
        "BFD {}: echo reflected by the peer's datapath (rtt {} us); it proves the "
        "link, control packets slow to 1 s",
        e.target.name, e.echo_rtt_us);
    state_changed();
  }
  touch(b->second);
}

}  // namespace mlink::agent
