// sim_bfd.cpp - the simulated peers' BFD sessions (authenticated control packets, one per
// (peer, link)), and which agent echoes the kernel reflector answers.
#include <algorithm>

#include "proto/bfd/echo.h"
#include "sim.h"
#include "sim_util.h"

namespace mlink::sim {

// The reflector answers the agent's echoes on this link, as an mlink peer's datapath does
// once its sessions exist.
void Sim::allow_echoes(unsigned link) {
  if (!reflector_) return;
  const Link& l = links_[link];
  for (unsigned k = 0; k < o_.peers; k++)
    if (auto st = reflector_->allow(l.ifindex, link_addr(link, k), l.agent_addr); !st) {
      out("sim reflector: {}", st.error().message);
      return;
    }
}

void Sim::start_sessions(unsigned link, uint64_t now) {
  allow_echoes(link);
  // Spread the first packets over one Down interval, as independent hosts would be.
  std::uniform_int_distribution<uint64_t> d(0, 1'000'000);
  for (unsigned k = 0; k < o_.peers; k++) {
    size_t idx = size_t{link} * o_.peers + k;
    Sess& s = sess_[idx];
    if (s.started) continue;
    s.started = true;
    schedule(kSession, idx, &s.at, now + d(rng_) + 1);
  }
}

void Sim::bfd_rx(unsigned link, uint64_t now) {
  static BatchRx rx;
  bool more = true;
  for (int b = 0; b < kBatchesPerCallback && more; b++)
    for (const Rx& r : rx.read(links_[link].bfd_rx_fd, &more)) handle_bfd(link, r, now);
}

// The agent's group echoes on this link, each answered by every node whose session started and
// is not silenced, as their datapaths would (bpf/lib/group_echo.h). Anything else on 3785 (the
// agent's unicast echoes are reflected by ml_ingress before they get here) is ignored.
void Sim::group_echo_rx(unsigned link) {
  static BatchRx rx;
  Link& l = links_[link];
  bool more = true;
  for (int b = 0; b < kBatchesPerCallback && more; b++)
    for (const Rx& r : rx.read(l.echo_fd, &more)) {
      if (r.ttl != 255 || !l.agent_known || r.src.s_addr != l.agent_addr.s_addr ||
          !bfd::decode_group_echo(r.bytes))
        continue;
      c_.group_echoes++;
      for (unsigned k = 0; k < o_.peers; k++) {
        const Sess& s = sess_[size_t{link} * o_.peers + k];
        if (s.started && !s.silent)
          l.echo_tx->queue(link_addr(link, k), l.agent_addr, r.sport, r.bytes);
      }
      flush();  // 1,000 replies a batch: out before the next batch is read
    }
}

void Sim::handle_bfd(unsigned link, const Rx& r, uint64_t now) {
  Link& l = links_[link];
  if (r.ttl != 255) {
    c_.bfd_bad_ttl++;
    return;
  }
  auto k = node_of(r.dst, link);
  if (!k) {
    c_.bfd_unmatched++;
    return;
  }
  if (!l.agent_known) {  // BFD before any HELLO: the sender is the agent
    l.agent_known = true;
    l.agent_addr = r.src;
    start_sessions(link, now);
  }
  if (r.src.s_addr != l.agent_addr.s_addr) {
    c_.bfd_unmatched++;
    return;
  }
  auto decoded = bfd::decode(r.bytes, &bfd_keys_);
  if (std::holds_alternative<bfd::Reject>(decoded)) {
    c_.bfd_rejected++;
    return;
  }
  const auto& p = std::get<bfd::ControlPacket>(decoded);
  size_t idx = size_t{link} * o_.peers + *k;
  Sess& s = sess_[idx];
  // Meticulous Keyed SHA1 (RFC 5880 §6.7.3): every packet's number above the last one.
  if (!p.auth || p.auth->type != static_cast<uint8_t>(bfd::AuthType::MeticulousKeyedSha1) ||
      (s.rx_seq && static_cast<int32_t>(p.auth->seq - *s.rx_seq) <= 0)) {
    c_.bfd_rejected++;
    return;
  }
  c_.bfd_rx++;
  s.rx_seq = p.auth->seq;
  s.remote_echo_us = p.required_min_echo_rx_us;
  if (!s.started) {
    s.started = true;
  }
  session_step(idx, s.s->on_packet(p, now), now);
}

void Sim::session_step(size_t idx, std::optional<bfd::Transition> tr, uint64_t now) {
  Sess& s = sess_[idx];
  if (tr) {
    unsigned link = static_cast<unsigned>(idx / o_.peers),
             node = static_cast<unsigned>(idx % o_.peers);
    if (tr->to != bfd::State::Up && tr->to != bfd::State::Init) s.rx_seq.reset();
    if (tr->to == bfd::State::Up) {
      c_.ups++;
      // An mlink peer's echo would be active within a round trip: control slows to 1 s.
      if (o_.slow_control && s.remote_echo_us) {
        s.s->set_timers(std::max(kSlowControlUs, o_.interval_ms * 1000), o_.interval_ms * 1000);
        s.slowed = true;
      }
    } else if (tr->from == bfd::State::Up) {
      c_.downs++;
      if (s.slowed) s.s->set_timers(o_.interval_ms * 1000, o_.interval_ms * 1000);
      s.slowed = false;
      out("sim bfd: {} {} up -> {} ({})", nodes_[node].id, links_[link].dev, bfd::to_string(tr->to),
          bfd::to_string(tr->diag));
    }
  }
  send_due(idx, now);
  uint64_t next = s.s->next_deadline_us();
  schedule(kSession, idx, &s.at, next == bfd::Session::kNever ? 0 : std::max<uint64_t>(next, 1));
}

void Sim::send_due(size_t idx, uint64_t now) {
  Sess& s = sess_[idx];
  unsigned link = static_cast<unsigned>(idx / o_.peers),
           node = static_cast<unsigned>(idx % o_.peers);
  Link& l = links_[link];
  while (auto tx = s.s->poll_tx(now)) {
    if (s.silent || !l.agent_known) {
      c_.bfd_silenced++;
      continue;
    }
    tx->required_min_echo_rx_us = o_.echo_rx_ms * 1000;
    auto bytes = bfd::encode_signed(*tx, bfd_key_id_, s.tx_seq++, bfd_key_);
    l.bfd_tx->queue(link_addr(link, node), l.agent_addr, bfd::kControlPort, bytes);
  }
}

}  // namespace mlink::sim
