#include "agent/liveness.h"

#include <sys/epoll.h>
#include <systemd/sd-event.h>

#include <limits>
#include <random>

#include "common/log.h"
#include "proto/bfd/codec.h"

namespace mlink::agent {
namespace {

constexpr uint64_t kTimerAccuracyUsec =
    200;  // BFD runs at 10-30 ms: sd-event's 250 ms default would not do

}  // namespace

Liveness::Liveness(const config::Bfd& cfg, OnChange on_change)
    : cfg_(cfg), on_change_(std::move(on_change)) {
  std::random_device rd;
  disc_base_ = rd() | 1u;  // odd, and unlikely to repeat across restarts
  if (!cfg_.keys.empty()) {
    keys_.required = true;
    for (const auto& [id, bytes] : cfg_.keys) keys_.keys[static_cast<uint8_t>(id)] = bytes;
    tx_seq_ = rd();  // §6.7.3: the initial sequence number should be random
  }
}

std::unique_ptr<Liveness> Liveness::create(const config::Bfd& cfg, OnChange on_change) {
  return std::unique_ptr<Liveness>(new Liveness(cfg, std::move(on_change)));
}

Liveness::~Liveness() {
  for (auto* s : io_) sd_event_source_disable_unref(s);
  if (timer_) sd_event_source_disable_unref(timer_);
}

uint64_t Liveness::now() const {
  uint64_t t = 0;
  sd_event_now(loop_, CLOCK_MONOTONIC, &t);
  return t;
}

Status Liveness::attach(sd_event* loop) {
  loop_ = loop;
  for (size_t i = 0; i < sockets_.size(); i++)
    if (auto s = watch(i); !s) return s;
  int r =
      sd_event_add_time(loop, &timer_, CLOCK_MONOTONIC, now(), kTimerAccuracyUsec, on_timer, this);
  if (r < 0) return os_error("add BFD timer", r);
  return {};
}

Status Liveness::watch(size_t socket) {
  sd_event_source* src = nullptr;
  int r = sd_event_add_io(loop_, &src, sockets_[socket].fd(), EPOLLIN, on_readable, this);
  if (r < 0) return os_error("watch BFD socket", r);
  io_.push_back(src);
  return {};
}

Result<Liveness::Id> Liveness::add(const Target& t) {
  auto key = std::make_pair(t.device, t.local);
  auto it = socket_index_.find(key);
  if (it == socket_index_.end()) {
    auto s = bfd::LinkSocket::open(t.device, t.local);
    if (!s) return s.error();
    sockets_.push_back(std::move(*s));
    it = socket_index_.emplace(key, sockets_.size() - 1).first;
    if (loop_)
      if (auto st = watch(it->second); !st) return st.error();
  }
  bfd::SessionConfig sc;
  sc.desired_min_tx_us = cfg_.interval_ms * 1000;
  sc.required_min_rx_us = cfg_.interval_ms * 1000;
  sc.detect_mult = static_cast<uint8_t>(cfg_.multiplier);
  Id id = next_id_++;
  sc.my_disc = disc_base_ + static_cast<uint32_t>(id) * 2;  // odd base, even steps: never 0
  sc.auth = !keys_.keys.empty();
  entries_.emplace(id, Entry{t, bfd::Session(sc), it->second, {}});
  if (loop_) rearm();
  return id;
}

void Liveness::remove(Id target) {
  entries_.erase(target);
}

bool Liveness::up(Id target) const {
  auto it = entries_.find(target);
  return it != entries_.end() && it->second.session.state() == bfd::State::Up;
}

int Liveness::on_readable(sd_event_source*, int fd, uint32_t, void* self) {
  auto* l = static_cast<Liveness*>(self);
  for (size_t i = 0; i < l->sockets_.size(); i++)
    if (l->sockets_[i].fd() == fd) l->receive(i);
  l->rearm();
  return 0;
}

int Liveness::on_timer(sd_event_source*, uint64_t, void* self) {
  auto* l = static_cast<Liveness*>(self);
  l->run_due(l->now());
  l->rearm();
  return 0;
}

void Liveness::receive(size_t socket) {
  while (auto d = sockets_[socket].receive()) deliver(socket, *d, now());
}

void Liveness::reject(bfd::Reject r, const IpAddr& from) {
  rejected_[static_cast<size_t>(r)]++;
  log::debug("BFD from {}: dropped ({})", from.str(), bfd::to_string(r));
}

// Single hop: the socket (link, local address) and the sender's address
// name the session; the session itself checks Your Discriminator.
void Liveness::deliver(size_t socket, const bfd::Datagram& d, uint64_t t) {
  auto decoded = bfd::decode(d.bytes, &keys_);
  if (const auto* r = std::get_if<bfd::Reject>(&decoded)) return reject(*r, d.src);
  const auto& p = std::get<bfd::ControlPacket>(decoded);
  for (auto& [id, e] : entries_) {
    if (e.socket != socket || e.target.remote != d.src) continue;
    // Meticulous Keyed SHA1 (§6.7.3): every packet's number is above the last.
    if (p.auth) {
      if (p.auth->type != static_cast<uint8_t>(bfd::AuthType::MeticulousKeyedSha1))
        return reject(bfd::Reject::BadAuthType, d.src);
      if (e.rx_seq && static_cast<int32_t>(p.auth->seq - *e.rx_seq) <= 0)
        return reject(bfd::Reject::Replay, d.src);
      e.rx_seq = p.auth->seq;
    }
    auto tr = e.session.on_packet(p, t);
    send_due(id, t);
    if (tr) changed(id, *tr);
    return;
  }
  rx_unmatched_++;
}

// §6.7.3: once a session is down, the peer's sequence is no longer known (a
// restarted peer starts from a new random number).
void Liveness::changed(Id id, const bfd::Transition& tr) {
  if (tr.to != bfd::State::Up) entries_.at(id).rx_seq.reset();
  on_change_(id, tr);
}

void Liveness::run_due(uint64_t t) {
  // on_change_ may add or remove sessions: walk a copy of the ids.
  std::vector<Id> due;
  for (const auto& [id, e] : entries_)
    if (e.session.next_deadline_us() <= t) due.push_back(id);
  for (Id id : due) {
    auto it = entries_.find(id);
    if (it == entries_.end()) continue;
    auto tr = it->second.session.on_timer(t);
    send_due(id, t);
    if (tr) changed(id, *tr);
  }
}

void Liveness::send_due(Id id, uint64_t t) {
  auto& e = entries_.at(id);
  while (auto tx = e.session.poll_tx(t)) {
    std::vector<uint8_t> bytes;
    if (keys_.keys.empty()) {
      bytes = bfd::encode(*tx);
    } else {
      const auto& [key_id, key] = *keys_.keys.rbegin();  // the highest id signs
      bytes = bfd::encode_signed(*tx, key_id, tx_seq_++, key);
    }
    if (auto s = sockets_[e.socket].send(e.target.remote, bytes); !s)
      log::debug("BFD {}: {}", e.target.name, s.error().message);
  }
}

void Liveness::rearm() {
  if (!timer_) return;
  uint64_t next = std::numeric_limits<uint64_t>::max();
  for (const auto& [id, e] : entries_) next = std::min(next, e.session.next_deadline_us());
  if (next == std::numeric_limits<uint64_t>::max()) {
    sd_event_source_set_enabled(timer_, SD_EVENT_OFF);
    return;
  }
  sd_event_source_set_time(timer_, next);
  sd_event_source_set_enabled(timer_, SD_EVENT_ONESHOT);
}

std::array<uint64_t, Liveness::kRejects> Liveness::rejected() const {
  auto out = rejected_;
  for (const auto& s : sockets_) out[kBadHopLimit] += s.dropped_hop_limit();
  return out;
}

}  // namespace mlink::agent
