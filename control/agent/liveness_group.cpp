// liveness_group.cpp - group echo (bpf/include/mlink_abi.h, "Group echo"): one echo per link
// socket and interval to the all-nodes group instead of one per session. Every peer's
// datapath reflects it; ours checks each reflection and records it in the session's
// ml_echo_seen slot. The agent reads a socket's slots together at their earliest detection
// time (sweep_group_due). So its echo work is one packet per link and interval plus one
// memory read per session every two or three intervals, not a send and a receive per
// session and interval.
//
// A session offers group echo for kEchoProbeUsec when it comes Up, beside its unicast
// echoes; once a reflection is recorded its unicast echoes stop. A peer that reflects none
// (an older mlink, FRR, a link whose frames do not arrive as multicast Ethernet) keeps
// unicast echoes. Detection is unchanged: `multiplier` group echoes sent after the last one
// that came back and the detection time passed.
#include <algorithm>
#include <optional>

#include "agent/liveness.h"
#include "common/log.h"
#include "proto/bfd/echo.h"

namespace mlink::agent {
namespace {

static_assert(bfd::kEchoLen == ML_ECHO_LEN);
static_assert(ML_ECHO_GROUP_MAGIC == ('M' << 24 | 'L' << 16 | 'E' << 8 | 'G'));

const IpAddr& all_nodes(int family) {
  static const IpAddr v4 = *IpAddr::parse("224.0.0.1");
  static const IpAddr v6 = *IpAddr::parse("ff02::1");
  return family == AF_INET ? v4 : v6;
}

}  // namespace

uint32_t Liveness::alloc_slot() {
  if (!table_) return kNoSlot;
  uint32_t s = kNoSlot;
  if (!free_slots_.empty()) {
    s = free_slots_.back();
    free_slots_.pop_back();
  } else if (next_slot_ < table_->slots()) {
    s = next_slot_++;
  } else {
    return kNoSlot;  // the table is full: this session's echoes stay unicast
  }
  table_->clear_seen(s);
  return s;
}

void Liveness::start_group(Entry& e, uint64_t t) {
  if (!table_ || e.slot == kNoSlot || e.socket >= ML_ECHO_SOCKETS) return;
  if (e.group == Group::Probing || e.group == Group::Active) return;
  e.group = Group::Probing;
  e.group_since_us = t;
  e.group_count = table_->seen(e.slot).count;
  GroupTx& g = group_tx_[e.socket];
  if (g.users++ == 0) g.next_us = t;
}

void Liveness::stop_group(Entry& e) {
  if (e.group == Group::Probing || e.group == Group::Active) {
    GroupTx& g = group_tx_[e.socket];
    g.members.erase(e.id);
    if (--g.users == 0) {
      table_->stop(static_cast<uint32_t>(e.socket));
      g.burst.reset();
    }
  }
  e.group = Group::Off;
}

bool Liveness::group_echo(Id target) const {
  auto it = entries_.find(target);
  return it != entries_.end() && it->second.group == Group::Active;
}

// What the datapath recorded for e since the last read: the newest reflection's time and
// round trip, and the loss history. Returns a change of lossy.
std::optional<bool> Liveness::read_group(Entry& e) {
  ml_echo_seen s = table_->seen(e.slot);
  if (s.count == e.group_count) return std::nullopt;
  e.group_count = s.count;
  e.echo_last_rx_us = s.last_ns / 1000;  // bpf_ktime_get_ns: CLOCK_MONOTONIC, as now()
  e.echo_rtt_us = s.rtt_us;
  e.group_seq = s.seq;
  if (e.group != Group::Active) return std::nullopt;
  uint32_t next = group_tx_[e.socket].seq;
  e.loss.observe(next, next - e.group_first_seq, s.seq, s.bits);
  return e.loss.update(group_tx_[e.socket].burst.grace(cfg_.multiplier));
}

// As unicast echo: `multiplier` group echoes sent after the last one that came back, and the
// detection time passed. Counting what was sent keeps an agent that did not run (and so sent
// nothing) from failing every session at once.
bool Liveness::group_failed(const Entry& e, uint64_t t) const {
  uint32_t unanswered = group_tx_[e.socket].seq - 1 - e.group_seq;
  return unanswered >= cfg_.multiplier &&
         t >= e.echo_last_rx_us + uint64_t{cfg_.multiplier} * group_interval_us();
}

// A Probing session, at its unicast echo's deadlines: did the peer reflect a group echo?
bool Liveness::run_group(Id id, Entry& e, uint64_t t) {
  if (e.group == Group::Active) return true;
  if (e.group != Group::Probing) return false;
  uint64_t count = e.group_count;
  read_group(e);
  if (e.group_count == count) {
    if (t >= e.group_since_us + kEchoProbeUsec) {
      e.group = Group::No;
      if (GroupTx& g = group_tx_[e.socket]; --g.users == 0) {
        table_->stop(static_cast<uint32_t>(e.socket));
        g.burst.reset();
      }
      log::debug("BFD {}: the peer reflects no group echo; unicast echoes", e.target.name);
    }
    return false;
  }
  e.group = Group::Active;
  e.group_first_seq = e.group_seq;
  e.loss.reset();
  GroupTx& g = group_tx_[e.socket];
  g.members.emplace(id, &e);
  g.sweep_us =
      std::min(g.sweep_us, e.echo_last_rx_us + uint64_t{cfg_.multiplier} * group_interval_us());
  bool was_active = e.echo == Echo::Active;
  e.echo = Echo::Active;
  if (!was_active)
    e.session.set_timers(std::max(kEchoControlTxUs, cfg_.interval_ms * 1000),
                         cfg_.interval_ms * 1000);
  log::info("BFD {}: group echo reflected by the peer's datapath (rtt {} us); it proves the {}",
            e.target.name, e.echo_rtt_us,
            was_active ? "link instead of unicast echoes" : "link, control packets slow to 1 s");
  state_changed();
  return true;
}

// When a member (not already out for loss) missed the last group echo, the gap of a burst:
// no shorter than any member's peer asked for (Required Min Echo RX); 0 when none missed.
// One read of each member's slot, only when a miss would start a burst.
uint64_t Liveness::group_burst_gap(const GroupTx& g) const {
  bool missed = false;
  uint64_t gap = group_interval_us() / bfd::EchoBurst::kDivisor;
  for (const auto& [id, e] : g.members) {
    gap = std::max<uint64_t>(gap, e->remote_echo_rx_us);
    if (!e->loss.lossy() && table_->seen(e->slot).seq != g.seq - 1) missed = true;
  }
  return missed ? gap : 0;
}

// A burst (bfd/echo_burst.h) makes the socket's group echoes faster for every member: each
// peer reflects a few more, and the members are swept after each one, so the one that lost
// them is judged on them.
void Liveness::send_group_due(uint64_t t) {
  if (!table_) return;
  uint64_t iv = group_interval_us();
  for (size_t i = 0; i < group_tx_.size(); i++) {
    GroupTx& g = group_tx_[i];
    if (g.users == 0 || g.next_us > t) continue;
    bool missed = false;
    if (g.burst.ready()) {
      g.burst_gap_us = group_burst_gap(g);
      missed = g.burst_gap_us != 0;
    }
    bfd::GroupEcho ge{static_cast<uint32_t>(i), g.seq, t, bfd::random_nonce()};
    table_->sent(ge.socket, g.ifindex, ge.seq, ge.nonce);  // before it can come back
    queue(echo_tx_[i], all_nodes(g.family), bfd::encode_group_echo(ge));
    g.seq++;
    uint64_t gap = g.burst.next_gap(missed, iv, g.burst_gap_us);
    g.next_us += gap;
    if (g.next_us <= t) g.next_us = t + gap;  // late: no burst to catch up
    if (gap < iv) g.sweep_us = std::min(g.sweep_us, g.next_us);
    if (missed && gap < iv)
      log::debug("group echo on ifindex {}: a peer missed one; the next {} {} us apart", g.ifindex,
                 bfd::EchoBurst::kLength, gap);
  }
}

// Each socket's group sessions, together, at the earliest detection time among them: a
// session fails when its time is up, as with a timer of its own, while a healthy link costs
// one wakeup per socket every two or three intervals (its sessions' newest reflections push
// the next sweep on). Failures and loss changes are acted on after the scan: they add and
// remove sessions.
void Liveness::sweep_group_due(uint64_t t) {
  enum class Event { Failed, Lossy, Clean };
  std::vector<std::pair<Id, Event>> events;
  const uint64_t detect = uint64_t{cfg_.multiplier} * group_interval_us();
  for (size_t i = 0; i < group_tx_.size(); i++) {
    if (group_tx_[i].sweep_us > t) continue;
    uint64_t next = std::numeric_limits<uint64_t>::max();  // the earliest detection time
    for (auto& [id, e] : group_tx_[i].members) {
      auto lossy = read_group(*e);
      if (group_failed(*e, t)) {
        events.emplace_back(id, Event::Failed);
        continue;
      }
      if (lossy) events.emplace_back(id, *lossy ? Event::Lossy : Event::Clean);
      next = std::min(next, e->echo_last_rx_us + detect);
    }
    // Again at the earliest detection time; when that has passed with too few echoes sent
    // to judge (the agent ran late), a little after the next one leaves.
    GroupTx& g = group_tx_[i];
    g.sweep_us = next > t ? next : g.next_us + std::max<uint64_t>(group_interval_us() / 10, 1000);
    // In a burst, again after the next echo leaves (only while one will: a socket whose
    // sessions all went sends none, and a sweep due at once would spin the loop).
    if (g.burst.active() && !g.members.empty() && g.next_us > t)
      g.sweep_us = std::min(g.sweep_us, g.next_us);
  }
  for (auto [id, ev] : events) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.group != Group::Active) continue;
    if (ev != Event::Failed) {
      if (on_loss_) on_loss_(id, ev == Event::Lossy, it->second.loss.lost());
      continue;
    }
    if (auto tr = it->second.session.echo_failed(t)) changed(id, *tr);
    touch(id);
  }
}

uint64_t Liveness::next_group_due() const {
  uint64_t next = std::numeric_limits<uint64_t>::max();
  for (const auto& g : group_tx_) {
    if (g.users > 0) next = std::min(next, g.next_us);
    next = std::min(next, g.sweep_us);
  }
  return next;
}

}  // namespace mlink::agent
