#include "sim.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>

#include "common/clock.h"
#include "common/keyfile.h"
#include "sim_util.h"

namespace mlink::sim {

in_addr Sim::link_addr(unsigned link, unsigned node) const {
  in_addr a;
  a.s_addr = htonl((10u << 24) | (link << 16) | ((node / 250) << 8) | (node % 250 + 2));
  return a;
}

in_addr Sim::ml_addr(unsigned node) const {
  in_addr a;
  a.s_addr = htonl((10u << 24) | (88u << 16) | ((node / 250) << 8) | (node % 250 + 2));
  return a;
}

std::optional<unsigned> Sim::node_of(in_addr a, unsigned link) const {
  uint32_t h = ntohl(a.s_addr);
  if ((h >> 24) != 10 || ((h >> 16) & 0xff) != link) return std::nullopt;
  unsigned hi = (h >> 8) & 0xff, lo = h & 0xff;
  if (lo < 2 || lo >= 252) return std::nullopt;
  unsigned k = hi * 250 + lo - 2;
  if (k >= o_.peers) return std::nullopt;
  return k;
}

std::optional<unsigned> Sim::node_of_id(const std::string& id) const {
  if (id.size() <= o_.id_prefix.size() || id.compare(0, o_.id_prefix.size(), o_.id_prefix) != 0)
    return std::nullopt;
  unsigned k = 0;
  for (size_t i = o_.id_prefix.size(); i < id.size(); i++) {
    if (id[i] < '0' || id[i] > '9') return std::nullopt;
    k = k * 10 + unsigned(id[i] - '0');
  }
  if (k == 0 || k > o_.peers || nodes_[k - 1].id != id) return std::nullopt;
  return k - 1;
}

Result<std::unique_ptr<Sim>> Sim::create(const Options& o) {
  if (o.peers == 0 || o.peers > 250 * 250 || o.links == 0 || o.links > 16)
    return Error{"peers must be 1..62500, links 1..16"};
  std::unique_ptr<Sim> s(new Sim(o));
  if (auto st = s->setup(); !st) return st.error();
  return s;
}

Status Sim::setup() {
  auto tk = read_key_file(o_.topo_key_file, {.max_id = 65535, .min_len = 32, .max_len = 32});
  if (!tk) return tk.error();
  for (const auto& [id, bytes] : *tk) {
    topo::KeyBytes k{};
    std::copy_n(bytes.begin(), k.size(), k.begin());
    topo_keys_[static_cast<topo::KeyId>(id)] = k;
  }
  if (topo_keys_.empty()) return Error{o_.topo_key_file + ": no key"};
  topo_send_key_ = {topo_keys_.rbegin()->first, topo_keys_.rbegin()->second};
  auto bk = read_key_file(o_.bfd_key_file, {.max_id = 255, .min_len = 1, .max_len = 20});
  if (!bk) return bk.error();
  for (const auto& [id, bytes] : *bk) bfd_keys_.keys[static_cast<uint8_t>(id)] = bytes;
  if (bfd_keys_.keys.empty()) return Error{o_.bfd_key_file + ": no key"};
  bfd_keys_.required = true;
  bfd_key_id_ = bfd_keys_.keys.rbegin()->first;
  bfd_key_ = bfd_keys_.keys.rbegin()->second;
  if (inet_pton(AF_INET, o_.group.c_str(), &group_) != 1) return Error{"bad group " + o_.group};

  unsigned width = o_.peers > 9999 ? 5 : 4;
  for (unsigned k = 0; k < o_.peers; k++) {
    Node n;
    n.id = fmt::format("{}{:0{}}", o_.id_prefix, k + 1, width);
    n.page = k;  // pages start at different places, as they would on real nodes
    nodes_.push_back(std::move(n));
  }
  for (unsigned i = 0; i < o_.links; i++) {
    topo::LinkInfo li;
    Prefix p;
    p.addr.family = AF_INET;
    p.addr.bytes[0] = 10;
    p.addr.bytes[1] = static_cast<uint8_t>(i);
    p.len = 16;
    li.subnets.push_back(p);
    links_body_.links.push_back(li);
  }
  for (const auto& n : nodes_) sorted_ids_.push_back(n.id);
  std::sort(sorted_ids_.begin(), sorted_ids_.end());

  std::vector<int> ifindexes;
  links_.resize(o_.links);
  for (unsigned i = 0; i < o_.links; i++) {
    Link& l = links_[i];
    l.dev = o_.dev_prefix + std::to_string(i);
    l.ifindex = ifindex_of(l.dev);
    if (!l.ifindex) return Error{"no device " + l.dev};
    ifindexes.push_back(l.ifindex);
    auto t = open_udp(l.dev, o_.topo_port);
    if (!t) return t.error();
    l.topo_fd = *t;
    if (auto st = join_group(l.topo_fd, l.ifindex, group_); !st) return st;
    auto r = open_udp(l.dev, bfd::kControlPort);
    if (!r) return r.error();
    l.bfd_rx_fd = *r;
    auto x = open_udp(l.dev, static_cast<uint16_t>(kBfdSourcePort + i));
    if (!x) return x.error();
    l.bfd_tx_fd = *x;
    l.topo_tx = std::make_unique<BatchTx>(l.topo_fd, l.ifindex);
    l.bfd_tx = std::make_unique<BatchTx>(l.bfd_tx_fd, l.ifindex);
    if (o_.group_echo) {  // 224.0.0.1 needs no join: every host is a member
      auto e = open_udp(l.dev, kEchoPort);
      if (!e) return e.error();
      l.echo_fd = *e;
      l.echo_tx = std::make_unique<BatchTx>(l.echo_fd, l.ifindex);
    }
  }
  if (o_.reflect) {
    auto r = Reflector::attach(ifindexes, o_.links * o_.peers);
    if (!r) return r.error();
    reflector_ = std::move(*r);
  }

  sess_.resize(size_t{o_.links} * o_.peers);
  pnl_.resize(sess_.size());
  std::uniform_int_distribution<uint32_t> seq0;
  for (unsigned i = 0; i < o_.links; i++)
    for (unsigned k = 0; k < o_.peers; k++) {
      size_t idx = size_t{i} * o_.peers + k;
      bfd::SessionConfig sc;
      sc.desired_min_tx_us = o_.interval_ms * 1000;
      sc.required_min_rx_us = o_.interval_ms * 1000;
      sc.detect_mult = o_.multiplier;
      sc.my_disc = 0x40000000u + static_cast<uint32_t>(idx) * 2 + 1;
      sc.auth = true;
      sess_[idx].s.emplace(sc);
      sess_[idx].tx_seq = seq0(rng_);
    }

  // The epoch is the next wall-clock second; every node uses it (docs/PROTOCOL.md, "Replay").
  uint64_t wall = wall_us();
  auto epoch = static_cast<uint32_t>(wall / 1'000'000 + 1);
  for (auto& n : nodes_) n.seq = topo::Sequencer(epoch);
  start_us_ = monotonic_us() + (uint64_t{epoch} * 1'000'000 - wall);
  hello_at_.assign(o_.peers, 0);
  links_at_.assign(o_.peers, 0);
  std::uniform_int_distribution<uint64_t> hello_phase(0, uint64_t{o_.hello_ms} * 1000);
  std::uniform_int_distribution<uint64_t> links_phase(0, uint64_t{o_.links_ms} * 1000);
  for (unsigned k = 0; k < o_.peers; k++) {
    schedule(kHello, k, &hello_at_[k], start_us_ + hello_phase(rng_));
    schedule(kLinks, k, &links_at_[k], start_us_ + links_phase(rng_));
  }
  schedule(kStats, 0, &stats_at_, monotonic_us() + uint64_t{o_.stats_s} * 1'000'000);
  return {};
}

Sim::~Sim() {
  for (auto* s : io_) sd_event_source_disable_unref(s);
  if (timer_) sd_event_source_disable_unref(timer_);
  if (loop_) sd_event_unref(loop_);
  for (auto& l : links_)
    for (int fd : {l.topo_fd, l.bfd_rx_fd, l.bfd_tx_fd, l.echo_fd})
      if (fd >= 0) close(fd);
  if (control_fd_ >= 0) close(control_fd_);
}

void Sim::schedule(Kind kind, size_t idx, uint64_t* slot, uint64_t when) {
  uint64_t key = uint64_t{kind} << 40 | idx;
  if (*slot) timers_.erase({*slot, key});
  *slot = when;
  if (when) timers_.insert({when, key});
}

int Sim::run() {
  if (int r = sd_event_new(&loop_); r < 0) return fmt::print(stderr, "sd_event_new\n"), 1;
  sigset_t ss;
  sigemptyset(&ss);
  sigaddset(&ss, SIGTERM);
  sigaddset(&ss, SIGINT);
  sigprocmask(SIG_BLOCK, &ss, nullptr);
  sd_event_add_signal(loop_, nullptr, SIGTERM, nullptr, nullptr);
  sd_event_add_signal(loop_, nullptr, SIGINT, nullptr, nullptr);
  for (auto& l : links_)
    for (int fd : {l.topo_fd, l.bfd_rx_fd, l.echo_fd}) {
      if (fd < 0) continue;
      sd_event_source* src = nullptr;
      if (sd_event_add_io(loop_, &src, fd, EPOLLIN, on_io, this) < 0) return 1;
      io_.push_back(src);
    }
  if (!o_.control.empty()) {
    unlink(o_.control.c_str());
    if (mkfifo(o_.control.c_str(), 0600) != 0) return fmt::print(stderr, "mkfifo\n"), 1;
    // Read-write, so the FIFO never reads EOF when a writer closes.
    control_fd_ = open(o_.control.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    sd_event_source* src = nullptr;
    if (control_fd_ < 0 || sd_event_add_io(loop_, &src, control_fd_, EPOLLIN, on_control, this) < 0)
      return fmt::print(stderr, "control FIFO\n"), 1;
    io_.push_back(src);
  }
  if (sd_event_add_time(loop_, &timer_, CLOCK_MONOTONIC, 1, kTimerAccuracyUs, on_timer, this) < 0)
    return 1;
  rearm();
  out("sim ready peers={} links={} sessions={} reflect={} seen={} epoch_start_in_us={}", o_.peers,
      o_.links, sess_.size(), o_.reflect ? "bpf" : "none", o_.seen_page ? "page" : "agent",
      start_us_ > monotonic_us() ? start_us_ - monotonic_us() : 0);
  int r = sd_event_loop(loop_);
  print_stats(monotonic_us());
  out("sim exit {}", r);
  reflector_.reset();
  if (!o_.control.empty()) unlink(o_.control.c_str());
  return r < 0 ? 1 : 0;
}

int Sim::on_io(sd_event_source*, int fd, uint32_t, void* self) {
  auto* s = static_cast<Sim*>(self);
  uint64_t now = monotonic_us();
  for (unsigned i = 0; i < s->links_.size(); i++) {
    if (s->links_[i].topo_fd == fd) s->topo_rx(i, now);
    if (s->links_[i].bfd_rx_fd == fd) s->bfd_rx(i, now);
    if (s->links_[i].echo_fd == fd) s->group_echo_rx(i);
  }
  s->flush();
  s->rearm();
  return 0;
}

int Sim::on_timer(sd_event_source*, uint64_t, void* self) {
  auto* s = static_cast<Sim*>(self);
  s->run_due(monotonic_us());
  s->flush();
  s->rearm();
  return 0;
}

int Sim::on_control(sd_event_source*, int fd, uint32_t, void* self) {
  auto* s = static_cast<Sim*>(self);
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) s->control_buf_.append(buf, size_t(n));
  size_t nl;
  while ((nl = s->control_buf_.find('\n')) != std::string::npos) {
    std::string line = s->control_buf_.substr(0, nl);
    s->control_buf_.erase(0, nl + 1);
    s->command(line);
  }
  s->flush();
  s->rearm();
  return 0;
}

void Sim::rearm() {
  if (timers_.empty()) {
    sd_event_source_set_enabled(timer_, SD_EVENT_OFF);
    return;
  }
  sd_event_source_set_time(timer_, std::max<uint64_t>(timers_.begin()->first, 1));
  sd_event_source_set_enabled(timer_, SD_EVENT_ONESHOT);
}

void Sim::flush() {
  for (auto& l : links_) {
    size_t t = l.topo_tx->pending(), b = l.bfd_tx->pending();
    size_t failed = l.topo_tx->flush() + l.bfd_tx->flush();
    if (l.echo_tx) {
      c_.group_reflected += l.echo_tx->pending();
      failed += l.echo_tx->flush();
    }
    c_.topo_tx += t;
    c_.bfd_tx += b;
    c_.tx_failed += failed;
  }
}

// ---- timers, control -----------------------------------------------------------------------

void Sim::run_due(uint64_t now) {
  // Bounded: at most this many items per callback, so sockets get their turn.
  for (int n = 0; n < 4096 && !timers_.empty() && timers_.begin()->first <= now; n++) {
    auto [when, key] = *timers_.begin();
    timers_.erase(timers_.begin());
    auto kind = static_cast<Kind>(key >> 40);
    size_t idx = key & ((uint64_t{1} << 40) - 1);
    switch (kind) {
      case kSession: {
        Sess& s = sess_[idx];
        s.at = 0;
        session_step(idx, s.s->on_timer(now), now);
        break;
      }
      case kHello: {
        hello_at_[idx] = 0;
        send_hello(static_cast<unsigned>(idx), now);
        std::uniform_int_distribution<uint64_t> j(uint64_t{o_.hello_ms} * 900,
                                                  uint64_t{o_.hello_ms} * 1100);
        schedule(kHello, idx, &hello_at_[idx], now + j(rng_));
        break;
      }
      case kLinks:
        links_at_[idx] = 0;
        send_links(static_cast<unsigned>(idx));
        schedule(kLinks, idx, &links_at_[idx], now + uint64_t{o_.links_ms} * 1000);
        break;
      case kAnswer: {
        PerNodeLink& p = pnl_[idx];
        p.answer_at = 0;
        if (p.answer_pending)
          answer(static_cast<unsigned>(idx % o_.peers), static_cast<unsigned>(idx / o_.peers),
                 p.answer_links, now);
        p.answer_pending = p.answer_links = false;
        break;
      }
      case kStats:
        stats_at_ = 0;
        print_stats(now);
        schedule(kStats, 0, &stats_at_, now + uint64_t{o_.stats_s} * 1'000'000);
        break;
    }
  }
}

void Sim::print_stats(uint64_t) {
  size_t st[4] = {};
  for (const auto& s : sess_) st[static_cast<int>(s.s->state())]++;
  out("sim stats up={} init={} down={} admin_down={} bfd_rx={} bfd_tx={} bfd_rejected={} "
      "bfd_unmatched={} bfd_silenced={} topo_rx={} topo_rx_unicast={} topo_tx={} "
      "topo_rejected={} topo_replay={} answers={} asks={} ups={} downs={} tx_failed={} "
      "group_echoes={} group_reflected={}",
      st[3], st[2], st[1], st[0], c_.bfd_rx, c_.bfd_tx, c_.bfd_rejected, c_.bfd_unmatched,
      c_.bfd_silenced, c_.topo_rx, c_.topo_rx_unicast, c_.topo_tx, c_.topo_rejected, c_.topo_replay,
      c_.answers, c_.asks, c_.ups, c_.downs, c_.tx_failed, c_.group_echoes, c_.group_reflected);
}

void Sim::command(const std::string& line) {
  char verb[16] = {};
  unsigned k = 0, i = 0;
  int n = std::sscanf(line.c_str(), "%15s %u %u", verb, &k, &i);
  std::string v = verb;
  if (n >= 1 && v == "stats") return print_stats(monotonic_us());
  if (n != 3 || (v != "silence" && v != "restore") || k >= o_.peers || i >= o_.links) {
    out("sim control: bad command '{}' (silence K I | restore K I | stats)", line);
    return;
  }
  size_t idx = size_t{i} * o_.peers + k;
  std::string addr = ip_str(link_addr(i, k));
  const std::string& dev = links_[i].dev;
  // Both legs at once: no more control packets from this (node, link), and its echoes
  // dropped before the reflector (drop.bpf.c). t1: both in force.
  bool on = v == "silence";
  uint64_t t0 = wall_us();
  sess_[idx].silent = on;
  Status st = reflector_ ? reflector_->silence(link_addr(i, k), on) : Status{};
  uint64_t t1 = wall_us();
  int rc = st ? 0 : 1;
  if (!st) out("sim control: {}", st.error().message);
  out("sim fault {} node={} index={} link={} addr={} ml={} t0_us={} t1_us={} rc={}", v,
      nodes_[k].id, k, dev, addr, ip_str(ml_addr(k)), t0, t1, rc);
}

}  // namespace mlink::sim
