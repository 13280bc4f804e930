#include "agent/liveness.h"

#include <net/if.h>
#include <sys/epoll.h>
#include <systemd/sd-event.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <limits>
#include <random>

#include "common/clock.h"
#include "common/log.h"
#include "proto/bfd/codec.h"
#include "proto/bfd/echo.h"

namespace mlink::agent {
namespace {

// How late the timer may fire, so that the deadlines of many sessions that
// fall close together are served by one wakeup: 1/20 of the interval (1.5 ms
// at 30 ms, which detection can spare), at least 200 us (sd-event's default of
// 250 ms would not do), at most 20 ms.
uint64_t timer_accuracy_us(uint32_t interval_ms) {
  return std::clamp<uint64_t>(uint64_t{interval_ms} * 1000 / 20, 200, 20'000);
}  // BFD runs at 10-30 ms: sd-event's 250 ms default would not do
// Past its accuracy, a timer this late means the process did not run.
constexpr uint64_t kLateUsec = 10'000;

}  // namespace

Liveness::Liveness(Options opts, OnChange on_change, OnLoss on_loss)
    : cfg_(std::move(opts.cfg)),
      reflects_(opts.reflects),
      filter_fd_(opts.socket_filter_fd),
      state_path_(std::move(opts.state_path)),
      opts_resume_(opts.resume),
      on_change_(std::move(on_change)),
      on_loss_(std::move(on_loss)),
      table_(opts.echo_table) {
  std::random_device rd;
  disc_base_ = rd() | 1u;  // odd, and unlikely to repeat across restarts
  seq_rng_.seed(rd());     // §6.7.3: bfd.XmitAuthSeq starts at a random value
  if (!cfg_.keys.empty()) {
    keys_.required = true;
    if (auto s = set_keys(cfg_.keys, cfg_.send_key_id); !s)
      log::warn("BFD: {}", s.error().message);  // config::load has checked it
  }
  load_state();
}

Status Liveness::set_keys(const KeyMap& keys, std::optional<uint32_t> send_key_id) {
  if (keys.empty() != keys_.keys.empty() && !entries_.empty())
    return Error{"turning BFD authentication on or off needs a restart"};
  uint32_t send = send_key_id.value_or(keys.empty() ? 0 : keys.rbegin()->first);
  if (!keys.empty() && !keys.count(send))
    return Error{"send_key_id " + std::to_string(send) + " is not in the key file"};
  bfd::KeyRing ring;
  ring.required = !keys.empty();
  for (const auto& [id, bytes] : keys) ring.keys[static_cast<uint8_t>(id)] = bytes;
  keys_ = std::move(ring);
  send_key_id_ = static_cast<uint8_t>(send);
  return {};
}

std::unique_ptr<Liveness> Liveness::create(Options opts, OnChange on_change, OnLoss on_loss) {
  return std::unique_ptr<Liveness>(
      new Liveness(std::move(opts), std::move(on_change), std::move(on_loss)));
}

Liveness::~Liveness() {
  for (auto& pair : io_)
    for (auto* s : pair)
      if (s) sd_event_source_disable_unref(s);
  if (timer_) sd_event_source_disable_unref(timer_);
  if (save_timer_) sd_event_source_disable_unref(save_timer_);
}

uint64_t Liveness::now() const {
  if (!loop_) return monotonic_us();
  uint64_t t = 0;
  sd_event_now(loop_, CLOCK_MONOTONIC, &t);
  return t;
}

Status Liveness::attach(sd_event* loop) {
  loop_ = loop;
  for (size_t i = 0; i < sockets_.size(); i++)
    if (sockets_[i].fd() >= 0)
      if (auto s = watch(i); !s) return s;
  int r = sd_event_add_time(loop, &timer_, CLOCK_MONOTONIC, now(),
                            timer_accuracy_us(cfg_.interval_ms), on_timer, this);
  if (r < 0) return os_error("add BFD timer", r);
  // BFD before bulk work: of the sources ready at once, the sessions' timer
  // and sockets are served first (a flood on the topology or control socket
  // waits its turn behind them, never the other way round).
  sd_event_source_set_priority(timer_, SD_EVENT_PRIORITY_IMPORTANT);
  r = sd_event_add_time(loop, &save_timer_, CLOCK_MONOTONIC, now(), kSaveDelayUsec / 10,
                        on_save_timer, this);
  if (r < 0) return os_error("add BFD state timer", r);
  sd_event_source_set_enabled(save_timer_, SD_EVENT_OFF);
  return {};
}

// The agent did not run for a while: what arrived meanwhile is read before
// any deadline is judged. (Echoes it did not send cannot be missing: echo
// detection counts unanswered echoes, see run_echo.)
void Liveness::after_stall(uint64_t late) {
  stalls_++;
  if (late >= 50'000 || stalls_ == 1)
    log::info("BFD: the timer ran {} ms late (the agent did not run)", late / 1000);
  for (size_t i = 0; i < sockets_.size(); i++) {
    receive(i);
    receive_echo(i);
  }
}

Status Liveness::watch(size_t socket) {
  const int fds[2] = {sockets_[socket].fd(), echo_sockets_[socket].fd()};
  for (int k = 0; k < 2; k++) {
    sd_event_source*& src = io_[socket][k];
    int r = sd_event_add_io(loop_, &src, fds[k], EPOLLIN, on_readable, this);
    if (r < 0) return os_error("watch BFD socket", r);
    sd_event_source_set_priority(src, SD_EVENT_PRIORITY_IMPORTANT);
  }
  return {};
}

Result<size_t> Liveness::socket_for(const Target& t) {
  SocketKey key{t.device, if_nametoindex(t.device.c_str()), t.local};
  if (auto it = socket_index_.find(key); it != socket_index_.end()) return it->second;
  auto s = bfd::LinkSocket::open(t.device, t.local, bfd::kControlPort, filter_fd_);
  if (!s) return s.error();
  auto e = bfd::EchoSocket::open(t.device, t.local, filter_fd_);
  if (!e) return e.error();
  auto free =
      std::find_if(sockets_.begin(), sockets_.end(), [](const auto& k) { return k.fd() < 0; });
  size_t i = static_cast<size_t>(free - sockets_.begin());
  if (free == sockets_.end()) {
    sockets_.push_back(std::move(*s));
    echo_sockets_.push_back(std::move(*e));
    socket_users_.push_back(0);
    io_.push_back({});
    ctl_tx_.emplace_back();
    echo_tx_.emplace_back();
    group_tx_.emplace_back();
  } else {
    sockets_[i] = std::move(*s);
    echo_sockets_[i] = std::move(*e);
  }
  group_tx_[i] = GroupTx{std::get<1>(key), t.local.family};
  socket_index_.emplace(key, i);
  if (loop_)
    if (auto st = watch(i); !st) return st.error();
  return i;
}

Result<Liveness::Id> Liveness::add(const Target& t) {
  auto socket = socket_for(t);
  if (!socket) return socket.error();
  bfd::SessionConfig sc;
  sc.desired_min_tx_us = cfg_.interval_ms * 1000;
  sc.required_min_rx_us = cfg_.interval_ms * 1000;
  sc.detect_mult = static_cast<uint8_t>(cfg_.multiplier);
  Id id = next_id_++;
  sc.my_disc = disc_base_ + static_cast<uint32_t>(id) * 2;  // odd base, even steps: never 0
  sc.auth = !keys_.keys.empty();
  auto saved = saved_.find({t.device, t.local, t.remote});
  if (saved != saved_.end()) sc.my_disc = saved->second.snap.my_disc;  // the peer knows this one
  auto [it, added] = entries_.emplace(id, Entry{id, t, bfd::Session(sc), *socket});
  socket_users_[*socket]++;
  it->second.slot = alloc_slot();
  it->second.tx_seq = seq_rng_();
  if (auto r = retired_.find({t.device, t.local, t.remote}); r != retired_.end()) {
    it->second.tx_seq = r->second.tx_seq;
    retired_.erase(r);
  }
  by_remote_.emplace(std::pair{*socket, t.remote}, id);  // a second one over the same pair waits
  by_disc_[sc.my_disc] = id;
  if (saved != saved_.end()) {
    Entry& e = it->second;
    uint64_t t_now = now();
    restore(e, saved->second, t_now);
    if (saved->second.resume) {
      e.remote_echo_rx_us = saved->second.remote_echo_rx_us;
      if (auto tr = e.session.resume(saved->second.snap, t_now)) {
        log::info("BFD {}: resumed Up from the previous agent", t.name);
        changed(id, *tr);
      }
    }
    saved_.erase(saved);
  }
  touch(id);
  if (loop_) rearm();
  return id;
}

// §6.8.16: a session that ends says AdminDown first, so the peer takes the
// link out at once instead of after its detection time (or, with echo
// running, its slow control timeout).
void Liveness::remove(Id target) {
  auto it = entries_.find(target);
  if (it == entries_.end()) return;
  if (loop_ && it->second.session.state() != bfd::State::Down) {
    uint64_t t = now();
    it->second.session.set_admin_down(true, t);
    send_due(target, t);
    flush_tx();
  }
  timers_.erase({it->second.due_us, target});
  if (!keys_.keys.empty())
    retired_[{it->second.target.device, it->second.target.local, it->second.target.remote}] = {
        it->second.tx_seq, now()};
  if (auto d = by_disc_.find(it->second.session.my_disc());
      d != by_disc_.end() && d->second == target)
    by_disc_.erase(d);
  auto key = std::pair{it->second.socket, it->second.target.remote};
  stop_group(it->second);
  if (it->second.slot != kNoSlot) free_slots_.push_back(it->second.slot);
  entries_.erase(it);
  if (--socket_users_[key.first] == 0) release_socket(key.first);
  if (auto r = by_remote_.find(key); r != by_remote_.end() && r->second == target) {
    by_remote_.erase(r);
    for (const auto& [id, e] : entries_)  // rare: another session over the same pair
      if (e.socket == key.first && e.target.remote == key.second) {
        by_remote_.emplace(key, id);
        break;
      }
  }
}

// A link's device deleted, or the link taken out: nothing may keep its sockets open (an agent
// would otherwise hold 3 descriptors per deletion until it stops).
void Liveness::release_socket(size_t socket) {
  for (auto*& src : io_[socket])
    if (src) src = sd_event_source_disable_unref(src);
  sockets_[socket].close();
  echo_sockets_[socket].close();
  ctl_tx_[socket].clear();
  echo_tx_[socket].clear();
  group_tx_[socket] = GroupTx{};
  std::erase_if(socket_index_, [&](const auto& kv) { return kv.second == socket; });
}

void Liveness::touch(Id id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  timers_.erase({e.due_us, id});
  e.due_us = std::min(e.session.next_deadline_us(), next_echo_deadline(e));
  if (e.due_us != std::numeric_limits<uint64_t>::max()) timers_.emplace(e.due_us, id);
}

// One lookup: every slot of every peer asks this on each rewrite (4,000 at a carrier loss).
SessionInfo Liveness::info(Id target) const {
  auto it = entries_.find(target);
  if (it == entries_.end()) return {};
  const Entry& e = it->second;
  const auto& s = e.session;
  return {
      s.state() == bfd::State::Up, is_lossy(e),   s.state(),     s.local_diag(),
      e.echo == Echo::Active,      e.echo_rtt_us, e.loss.lost(), e.slot == kNoSlot ? 0 : e.slot + 1,
      e.group == Group::Active};
}

bool Liveness::up(Id target) const {
  auto it = entries_.find(target);
  return it != entries_.end() && it->second.session.state() == bfd::State::Up;
}

bool Liveness::echo_active(Id target) const {
  auto it = entries_.find(target);
  return it != entries_.end() && it->second.echo == Echo::Active;
}

bool Liveness::lossy(Id target) const {
  auto it = entries_.find(target);
  return it != entries_.end() && is_lossy(it->second);
}

bool Liveness::is_lossy(const Entry& e) {
  // The echo history outlives a Down: a link that lost echoes before it
  // failed is still lossy when its session comes back, until proven clean.
  return (e.echo == Echo::Probing || e.echo == Echo::Active) && e.loss.lossy();
}

unsigned Liveness::echo_lost(Id target) const {
  auto it = entries_.find(target);
  return it == entries_.end() ? 0 : it->second.loss.lost();
}

uint64_t Liveness::echo_rtt_us(Id target) const {
  auto it = entries_.find(target);
  return it == entries_.end() ? 0 : it->second.echo_rtt_us;
}

int Liveness::on_readable(sd_event_source*, int fd, uint32_t, void* self) {
  auto* l = static_cast<Liveness*>(self);
  for (size_t i = 0; i < l->sockets_.size(); i++) {
    if (l->sockets_[i].fd() == fd) l->receive(i);
    if (l->echo_sockets_[i].fd() == fd) l->receive_echo(i);
  }
  l->flush_tx();
  l->rearm();
  return 0;
}

int Liveness::on_timer(sd_event_source*, uint64_t armed_for, void* self) {
  auto* l = static_cast<Liveness*>(self);
  uint64_t t = l->now();
  // Woken late (the process did not run: a loaded machine, a stopped VM):
  // what arrived meanwhile is read first, or the echoes and control packets
  // that came in time would be taken for missing and every session would
  // fail at once.
  uint64_t late = timer_accuracy_us(l->cfg_.interval_ms) + kLateUsec;
  // Late against the time the timer was armed for (never in the past, see
  // rearm), not against a deadline: a new session's first packet is due "at 0".
  if (!l->timers_.empty() && t > armed_for + late) l->after_stall(t - armed_for);
  l->run_due(t);
  l->send_group_due(t);
  l->sweep_group_due(t);
  l->flush_tx();
  l->rearm();
  return 0;
}

void Liveness::receive(size_t socket) {
  if (sockets_[socket].fd() < 0) return;  // released
  uint64_t t = now();
  bool more = true;
  for (int b = 0; b < kBatchesPerCallback && more; b++)
    for (const auto& d : sockets_[socket].receive_batch(rx_batch_, &more))
      deliver(socket, d.bytes, d.meta.src, t);
}

void Liveness::reject(bfd::Reject r, const IpAddr& from) {
  rejected_[static_cast<size_t>(r)]++;
  if (log::enabled(log::Level::Debug) && reject_log_.allow(now()))
    log::debug("BFD from {}: dropped ({}){}", from.str(), bfd::to_string(r),
               log::suppressed_note(reject_log_));
}

// Single hop: the socket (link, local address) and the sender's address
// name the session; the session itself checks Your Discriminator.
void Liveness::deliver(size_t socket, std::span<const uint8_t> bytes, const IpAddr& src,
                       uint64_t t) {
  auto decoded = bfd::decode(bytes, &keys_);
  if (const auto* r = std::get_if<bfd::Reject>(&decoded)) return reject(*r, src);
  const auto& p = std::get<bfd::ControlPacket>(decoded);
  auto r = by_remote_.find({socket, src});
  if (r == by_remote_.end()) {
    rx_unmatched_++;
    return;
  }
  Id id = r->second;
  Entry& e = entries_.at(id);
  // Meticulous Keyed SHA1 (§6.7.3): the number must be in the window above the last one
  // accepted, whatever the session's state (a recorded Init replayed in Down is refused too).
  if (p.auth) {
    if (p.auth->type != static_cast<uint8_t>(bfd::AuthType::MeticulousKeyedSha1))
      return reject(bfd::Reject::BadAuthType, src);
    if (!e.rx_auth.acceptable(p.auth->seq, p.detect_mult, true, t))
      return reject(bfd::Reject::Replay, src);
  }
  e.remote_echo_rx_us = p.required_min_echo_rx_us;
  if (!e.remote_echo_rx_us && e.echo != Echo::Off) stop_echo(e);  // it stopped reflecting
  auto tr = e.session.on_packet(p, t);
  if (p.auth) rx_by_key_[p.auth->key_id]++;
  if (p.auth)  // known for twice the detection time (at least the one this packet sets)
    e.rx_auth.accepted(
        p.auth->seq, t,
        std::max(e.session.detect_time_us(), uint64_t{p.detect_mult} * p.desired_min_tx_us));
  send_due(id, t);
  if (tr) changed(id, *tr);
  touch(id);
}

// Echo runs only while Up.
void Liveness::changed(Id id, const bfd::Transition& tr) {
  Entry& e = entries_.at(id);
  if (tr.to != bfd::State::Up) {
    stop_echo(e);
  } else if (cfg_.echo && e.remote_echo_rx_us) {
    start_echo(e, tr.at_us);
  }
  state_changed();
  on_change_(id, tr);
}

void Liveness::run_due(uint64_t t) {
  // on_change_ may add or remove sessions: take the due ids first.
  std::vector<Id> due;
  for (auto it = timers_.begin(); it != timers_.end() && it->first <= t; ++it)
    due.push_back(it->second);
  for (Id id : due) {
    auto it = entries_.find(id);
    if (it == entries_.end()) continue;
    if (it->second.session.next_deadline_us() <= t) {
      auto tr = it->second.session.on_timer(t);
      send_due(id, t);
      if (tr) changed(id, *tr);
    }
    it = entries_.find(id);
    if (it != entries_.end() && next_echo_deadline(it->second) <= t) run_echo(id, t);
    touch(id);
  }
}

void Liveness::send_due(Id id, uint64_t t) {
  auto& e = entries_.at(id);
  while (auto tx = e.session.poll_tx(t)) {
    tx->required_min_echo_rx_us = echo_rx_advertised_us();
    std::vector<uint8_t> bytes;
    if (keys_.keys.empty()) {
      bytes = bfd::encode(*tx);
    } else {
      bytes = bfd::encode_signed(*tx, send_key_id_, e.tx_seq++, keys_.keys.at(send_key_id_));
      sent_since_save_++;
    }
    queue(ctl_tx_[e.socket], e.target.remote, bytes);
  }
}

void Liveness::queue(std::vector<std::pair<IpAddr, bfd::Bytes64>>& q, const IpAddr& dst,
                     std::span<const uint8_t> bytes) {
  bfd::Bytes64 b;
  b.size = static_cast<uint8_t>(std::min(bytes.size(), b.data.size()));
  std::copy_n(bytes.begin(), b.size, b.data.begin());
  q.emplace_back(dst, b);
}

void Liveness::flush_tx() {
  std::vector<OutDatagram> out;
  for (size_t i = 0; i < sockets_.size(); i++) {
    for (bool echo : {false, true}) {
      auto& q = echo ? echo_tx_[i] : ctl_tx_[i];
      if (q.empty()) continue;
      out.clear();
      uint16_t port = echo ? bfd::kEchoPort : bfd::kControlPort;
      for (const auto& [dst, b] : q) out.push_back({dst, port, {b.data.data(), b.size}});
      if (echo)
        echo_sockets_[i].send_many(out);
      else
        sockets_[i].send_many(out);
      q.clear();
    }
  }
}

void Liveness::rearm() {
  if (!timer_) return;
  uint64_t due =
      std::min(timers_.empty() ? std::numeric_limits<uint64_t>::max() : timers_.begin()->first,
               next_group_due());
  if (due == std::numeric_limits<uint64_t>::max()) {
    sd_event_source_set_enabled(timer_, SD_EVENT_OFF);
    return;
  }
  sd_event_source_set_time(timer_, std::max(due, now()));
  sd_event_source_set_enabled(timer_, SD_EVENT_ONESHOT);
}

std::array<uint64_t, Liveness::kRejects> Liveness::rejected() const {
  auto out = rejected_;
  for (const auto& s : sockets_) out[kBadHopLimit] += s.dropped_hop_limit();
  return out;
}

}  // namespace mlink::agent
