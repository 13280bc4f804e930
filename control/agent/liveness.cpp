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

Liveness::Liveness(std::vector<Target> targets, OnChange on_change)
    : targets_(std::move(targets)), on_change_(std::move(on_change)) {}

Result<std::unique_ptr<Liveness>> Liveness::create(const config::Bfd& cfg,
                                                   std::vector<Target> targets,
                                                   OnChange on_change) {
  std::unique_ptr<Liveness> l(new Liveness(std::move(targets), std::move(on_change)));
  std::map<std::pair<std::string, IpAddr>, size_t> socket_index;
  std::random_device rd;
  uint32_t disc_base = rd() | 1u;  // nonzero, and unlikely to repeat across restarts
  for (size_t i = 0; i < l->targets_.size(); i++) {
    const auto& t = l->targets_[i];
    auto key = std::make_pair(t.device, t.local);
    auto it = socket_index.find(key);
    if (it == socket_index.end()) {
      auto s = bfd::LinkSocket::open(t.device, t.local);
      if (!s) return s.error();
      l->sockets_.push_back(std::move(*s));
      it = socket_index.emplace(key, l->sockets_.size() - 1).first;
    }
    l->socket_of_.push_back(it->second);
    bfd::SessionConfig sc;
    sc.desired_min_tx_us = cfg.interval_ms * 1000;
    sc.required_min_rx_us = cfg.interval_ms * 1000;
    sc.detect_mult = static_cast<uint8_t>(cfg.multiplier);
    sc.my_disc = disc_base + static_cast<uint32_t>(i) * 2;  // odd base, even steps: never 0
    l->sessions_.emplace_back(sc);
  }
  return l;
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
  for (size_t i = 0; i < sockets_.size(); i++) {
    sd_event_source* src = nullptr;
    int r = sd_event_add_io(loop, &src, sockets_[i].fd(), EPOLLIN, on_readable, this);
    if (r < 0) return os_error("watch BFD socket", r);
    sd_event_source_set_userdata(src, this);
    io_.push_back(src);
  }
  int r =
      sd_event_add_time(loop, &timer_, CLOCK_MONOTONIC, now(), kTimerAccuracyUsec, on_timer, this);
  if (r < 0) return os_error("add BFD timer", r);
  return {};
}

bool Liveness::up(size_t target) const {
  return sessions_[target].state() == bfd::State::Up;
}

int Liveness::on_readable(sd_event_source* src, int fd, uint32_t, void* self) {
  auto* l = static_cast<Liveness*>(self);
  for (size_t i = 0; i < l->sockets_.size(); i++)
    if (l->sockets_[i].fd() == fd) l->receive(i);
  (void)src;
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

// Single hop: the socket (link, local address) and the sender's address
// name the session; the session itself checks Your Discriminator.
void Liveness::deliver(size_t socket, const bfd::Datagram& d, uint64_t t) {
  auto decoded = bfd::decode(d.bytes, nullptr);
  if (const auto* reject = std::get_if<bfd::Reject>(&decoded)) {
    rx_rejected_++;
    log::debug("BFD from {}: dropped ({})", d.src.str(), bfd::to_string(*reject));
    return;
  }
  for (size_t i = 0; i < targets_.size(); i++) {
    if (socket_of_[i] != socket || targets_[i].remote != d.src) continue;
    auto tr = sessions_[i].on_packet(std::get<bfd::ControlPacket>(decoded), t);
    send_due(i, t);
    if (tr) on_change_(i, *tr);
    return;
  }
  rx_unmatched_++;
}

void Liveness::run_due(uint64_t t) {
  for (size_t i = 0; i < sessions_.size(); i++) {
    if (sessions_[i].next_deadline_us() > t) continue;
    auto tr = sessions_[i].on_timer(t);
    send_due(i, t);
    if (tr) on_change_(i, *tr);
  }
}

void Liveness::send_due(size_t i, uint64_t t) {
  while (auto tx = sessions_[i].poll_tx(t)) {
    auto bytes = bfd::encode(*tx);
    if (auto s = sockets_[socket_of_[i]].send(targets_[i].remote, bytes); !s)
      log::debug("BFD {}: {}", targets_[i].name, s.error().message);
  }
}

void Liveness::rearm() {
  uint64_t next = std::numeric_limits<uint64_t>::max();
  for (const auto& s : sessions_) next = std::min(next, s.next_deadline_us());
  if (next == std::numeric_limits<uint64_t>::max()) {
    sd_event_source_set_enabled(timer_, SD_EVENT_OFF);
    return;
  }
  sd_event_source_set_time(timer_, next);
  sd_event_source_set_enabled(timer_, SD_EVENT_ONESHOT);
}

}  // namespace mlink::agent
