#include "discovery/discovery.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include <algorithm>
#include <ctime>

#include "common/log.h"

namespace mlink::discovery {
namespace {

constexpr uint64_t kLinksIntervalUsec = 10'000'000;  // LINKS every 10 s (docs/PROTOCOL.md)
constexpr uint64_t kTimerAccuracyUsec = 1000;
constexpr uint64_t kLateUsec = 100'000;  // a timer this late means the process did not run

uint64_t wall_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000 + uint64_t(ts.tv_nsec) / 1000;
}

// Between two unicast HELLOs to one node on one link sent on its request
// (ANSWER); twice that between two asks of our own.
uint64_t answer_gap_us(uint32_t hello_interval_ms) {
  return uint64_t{hello_interval_ms} * 1000 / 4;
}

}  // namespace

Discovery::Discovery(Options opts, OnChange on_change)
    : opts_(std::move(opts)), on_change_(std::move(on_change)), table_(opts_.node_id) {}

Status Discovery::set_keys(const KeyMap& keys, std::optional<uint32_t> send_key_id) {
  if (keys.empty()) return Error{"discovery: no key"};
  uint32_t send = send_key_id.value_or(keys.rbegin()->first);
  if (!keys.count(send))
    return Error{"discovery: send_key_id " + std::to_string(send) + " is not in the key file"};
  topo::KeyRing ring;
  for (const auto& [id, bytes] : keys) {
    topo::KeyBytes k{};
    std::copy_n(bytes.begin(), std::min(bytes.size(), k.size()), k.begin());
    ring[static_cast<topo::KeyId>(id)] = k;
  }
  for (const auto& [id, k] : keys_)
    if (!ring.count(id)) replay_.forget_key(id);
  keys_ = std::move(ring);
  send_key_ = {static_cast<topo::KeyId>(send), keys_.at(static_cast<topo::KeyId>(send))};
  return {};
}

Result<std::unique_ptr<Discovery>> Discovery::create(Options opts, OnChange on_change) {
  std::unique_ptr<Discovery> d(new Discovery(std::move(opts), std::move(on_change)));
  for (auto& [id, l] : d->opts_.links)
    std::erase_if(l.addresses, [](const Prefix& p) { return p.addr.is_link_local_v6(); });
  if (auto s = d->set_keys(d->opts_.cfg.keys, d->opts_.cfg.send_key_id); !s) return s.error();
  for (int family : {AF_INET, AF_INET6}) {
    auto s = TopoSocket::open(family, d->opts_.cfg.port, d->opts_.socket_filter_fd);
    if (!s) return s.error();
    d->sockets_.push_back(std::move(*s));
  }
  d->queued_.resize(d->sockets_.size());
  for (const auto& [id, l] : d->opts_.links)
    if (auto st = d->membership(l, true); !st) return st.error();
  // The epoch is the next wall-clock second; nothing leaves before it.
  uint64_t wall = wall_us();
  auto epoch = static_cast<uint32_t>(wall / 1'000'000 + 1);
  d->seq_.emplace(epoch);
  d->start_us_ = uint64_t{epoch} * 1'000'000 - wall;  // relative; made absolute in attach()
  return d;
}

Status Discovery::membership(const ProtocolLink& l, bool join) {
  for (auto& s : sockets_) {
    const IpAddr& group = s.family() == AF_INET ? opts_.cfg.group4 : opts_.cfg.group6;
    if (auto st = join ? s.join(l.ifindex, group) : s.leave(l.ifindex, group); !st) return st;
  }
  return {};
}

Discovery::~Discovery() {
  for (auto* s : io_) sd_event_source_disable_unref(s);
  if (timer_) sd_event_source_disable_unref(timer_);
}

uint64_t Discovery::now_us() const {
  uint64_t t = 0;
  sd_event_now(loop_, CLOCK_MONOTONIC, &t);
  return t;
}

uint64_t Discovery::jittered_interval() {
  uint64_t base = uint64_t{opts_.cfg.hello_interval_ms} * 1000;
  std::uniform_int_distribution<uint64_t> jitter(base * 9 / 10, base * 11 / 10);
  return jitter(rng_);
}

Status Discovery::attach(sd_event* loop) {
  loop_ = loop;
  for (auto& s : sockets_) {
    sd_event_source* src = nullptr;
    if (int r = sd_event_add_io(loop, &src, s.fd(), EPOLLIN, on_readable, this); r < 0)
      return os_error("watch topology socket", r);
    io_.push_back(src);
  }
  start_us_ += now_us();
  next_hello_us_ = next_links_us_ = start_us_;
  int r = sd_event_add_time(loop, &timer_, CLOCK_MONOTONIC, start_us_, kTimerAccuracyUsec, on_timer,
                            this);
  if (r < 0) return os_error("add discovery timer", r);
  log::info("discovery on {} links, port {}, groups {} and {}, hello every {} ms",
            opts_.links.size(), opts_.cfg.port, opts_.cfg.group4.str(), opts_.cfg.group6.str(),
            opts_.cfg.hello_interval_ms);
  return {};
}

Counters Discovery::counters() const {
  Counters c = counters_;
  for (const auto& s : sockets_) c.bad_hop_limit += s.dropped_hop_limit();
  c.refused_nodes = table_.refused();
  return c;
}

// A bounded amount per callback, so a flood on one socket cannot hold the
// loop (BFD's timers run between two callbacks); the rest stays queued and
// the socket stays readable.
int Discovery::on_readable(sd_event_source*, int fd, uint32_t, void* self) {
  auto* d = static_cast<Discovery*>(self);
  uint64_t now = d->now_us();
  for (auto& s : d->sockets_)
    if (s.fd() == fd) d->read_some(s, now);
  d->flush(now);
  d->rearm();
  return 0;
}

int Discovery::on_timer(sd_event_source*, uint64_t, void* self) {
  auto* d = static_cast<Discovery*>(self);
  uint64_t now = d->now_us();
  // Woken late: read the HELLOs that arrived meanwhile before expiring
  // anyone for silence.
  if (auto e = d->table_.next_expiry(); e && now > *e + kLateUsec)
    for (auto& s : d->sockets_) d->read_some(s, now);
  d->tick(now);
  d->flush(now);
  d->rearm();
  return 0;
}

void Discovery::read_some(TopoSocket& s, uint64_t now) {
  constexpr int kBatchesPerCallback = 4;
  bool more = true;
  for (int b = 0; b < kBatchesPerCallback && more; b++)
    for (const auto& dg : s.receive_batch(&more))
      handle(dg.bytes, dg.meta.src, dg.meta.ifindex, now);
}

void Discovery::deliver(const Received& r, uint64_t now) {
  handle(r.bytes, r.src, r.ifindex, now);
  flush(now);
}

void Discovery::run_timer(uint64_t now) {
  tick(now);
  flush(now);
}

std::vector<Outgoing> Discovery::take_queued() {
  std::vector<Outgoing> out;
  for (auto& q : queued_) {
    out.insert(out.end(), std::make_move_iterator(q.begin()), std::make_move_iterator(q.end()));
    q.clear();
  }
  return out;
}

void Discovery::handle(std::span<const uint8_t> bytes, const IpAddr& src, int ifindex,
                       uint64_t now) {
  auto it = std::find_if(opts_.links.begin(), opts_.links.end(),
                         [&](const auto& kv) { return kv.second.ifindex == ifindex; });
  if (it == opts_.links.end()) {
    counters_.not_a_link++;
    return;
  }
  size_t li = it->first;
  const ProtocolLink* link = &it->second;
  auto decoded = topo::decode(bytes, keys_);
  if (const auto* rej = std::get_if<topo::Reject>(&decoded)) {
    counters_.rejected[static_cast<size_t>(rej->reason)]++;
    if (log::enabled(log::Level::Debug) && reject_log_.allow(now))
      log::debug("topology packet from {} on {}: dropped ({}: {}){}", src.str(), link->device,
                 topo::reason_name(rej->reason), rej->detail, log::suppressed_note(reject_log_));
    return;
  }
  auto& m = std::get<topo::Message>(decoded);
  if (m.node_id == opts_.node_id) return;  // ours, back from a bridge or loop
  if (auto v = replay_.judge(m.node_id, m.key_id, m.seq, now);
      v != topo::ReplayGuard::Verdict::Fresh) {
    auto why = v == topo::ReplayGuard::Verdict::Stale ? topo::Reason::Stale : topo::Reason::Replay;
    counters_.rejected[static_cast<size_t>(why)]++;
    if (log::enabled(log::Level::Debug) && reject_log_.allow(now))
      log::debug("topology packet from {} ({}) on {}: dropped ({}: sequence {:#x}){}", m.node_id,
                 src.str(), link->device, topo::reason_name(why), m.seq,
                 log::suppressed_note(reject_log_));
    return;
  }
  counters_.rx_by_key[m.key_id]++;
  bool changed = false;
  if (const auto* h = std::get_if<topo::Hello>(&m.body)) {
    counters_.rx_hello++;
    auto c = table_.on_hello(li, m.node_id, m.seq, *h, now);
    if (c.refused) {
      log::debug("discovery: node {} on {}: the table is full ({} nodes)", m.node_id, link->device,
                 table_.nodes().size());
      return;
    }
    if (c.new_node) {
      log::info("discovery: node {} on {} (from {})", m.node_id, link->device, src.str());
      answers_[{li, m.node_id}].links = true;  // it learns us, and our links, in one round trip
    } else if (m.flags & topo::kFlagAnswer) {
      answers_[{li, m.node_id}].asked = true;
    }
    changed = c.plan;
  } else {
    counters_.rx_links++;
    changed = table_.on_links(m.node_id, std::get<topo::Links>(m.body));
  }
  if (changed) changed_.insert(m.node_id);
}

// What handling a batch asked for: the answers, then one change report.
void Discovery::flush(uint64_t now) {
  if (loop_ && now < start_us_) {  // nothing leaves before the epoch: answers wait for it
    for (auto& q : queued_) q.clear();
    report_changes();
    return;
  }
  auto pending = std::exchange(answers_, {});
  for (const auto& [key, a] : pending) {
    const auto& [link, node] = key;
    const Node* n = table_.find(node);
    if (!n || !n->links.count(link)) continue;
    uint64_t last = n->links.at(link).answered_us;
    if (!a.links && last && now < last + answer_gap_us(opts_.cfg.hello_interval_ms)) continue;
    answer(link, node, a.links, now);
  }
  if (!loop_) {  // not attached (tests): kept for take_queued()
    report_changes();
    return;
  }
  for (size_t i = 0; i < sockets_.size(); i++) {
    if (queued_[i].empty()) continue;
    size_t failed = sockets_[i].send_many(queued_[i]);
    counters_.tx += queued_[i].size() - failed;
    counters_.tx_errors += failed;
    queued_[i].clear();
  }
  report_changes();
}

void Discovery::report_changes() {
  if (changed_.empty()) return;
  std::vector<std::string> nodes(changed_.begin(), changed_.end());
  changed_.clear();
  on_change_(nodes);
}

void Discovery::tick(uint64_t now) {
  if (now < start_us_) return;
  auto expired = table_.expire(now);
  for (const auto& id : expired) {
    log::info("discovery: node {}: hold time expired on a link", id);
    changed_.insert(id);
    // Gone from the table: its numbers start afresh (docs/PROTOCOL.md, "Replay").
    if (!table_.find(id)) replay_.forget(id);
  }
  replay_.expire_idle(now, 2 * uint64_t{kMaxHoldMs} * 1000);  // longer than any hold time
  bool hello_all = now >= next_hello_us_;
  bool links_all = now >= next_links_us_;
  for (const auto& [l, link] : opts_.links) {
    if (hello_all || hello_now_.count(l)) send_hello(l);
    if (links_all || hello_now_.count(l)) send_links(l);
    // Nodes that have not named us yet: ask each (the answer to our first
    // HELLO may have been lost, or our multicast HELLOs do not reach it).
    if (hello_all)
      for (const auto& id : table_.not_two_way(l)) {
        uint64_t last = table_.find(id)->links.at(l).answered_us;
        if (!last || now >= last + answer_gap_us(opts_.cfg.hello_interval_ms) * 2)
          answer(l, id, false, now);
      }
  }
  hello_now_.clear();
  if (hello_all) next_hello_us_ = now + jittered_interval();
  if (links_all) next_links_us_ = now + kLinksIntervalUsec;
}

Status Discovery::set_link(size_t link, ProtocolLink l) {
  std::erase_if(l.addresses, [](const Prefix& p) { return p.addr.is_link_local_v6(); });
  auto it = opts_.links.find(link);
  if (it == opts_.links.end() || it->second.ifindex != l.ifindex) {
    if (auto st = membership(l, true); !st) return st;
    if (it != opts_.links.end()) (void)membership(it->second, false);
    hello_now_.insert(link);
  }
  opts_.links[link] = std::move(l);
  if (loop_) send_links_everywhere();
  return {};
}

void Discovery::remove_link(size_t link) {
  auto it = opts_.links.find(link);
  if (it == opts_.links.end()) return;
  if (auto st = membership(it->second, false); !st) log::warn("{}", st.error().message);
  opts_.links.erase(it);
  hello_now_.erase(link);
  std::erase_if(answers_, [link](const auto& kv) { return kv.first.first == link; });
  table_.forget_link(link);
  if (loop_) send_links_everywhere();
}

void Discovery::send_links_everywhere() {
  for (const auto& [l, link] : opts_.links) send_links(l);
  flush(now_us());
  if (!hello_now_.empty()) rearm();
}

topo::Hello Discovery::hello_base(size_t link) const {
  topo::Hello h;
  h.ml_addrs = opts_.ml_addrs;
  const auto& l = opts_.links.at(link);
  for (const auto& a : l.addresses)
    if (h.link_addrs.size() < topo::kMaxLinkAddrs) h.link_addrs.push_back(a);
  h.hold_ms = opts_.cfg.hello_interval_ms * 7 / 2;
  return h;
}

void Discovery::send_hello(size_t link) {
  topo::Hello h = hello_base(link);
  if (h.link_addrs.empty()) return;  // nothing to be reached at
  h.seen = table_.seen_page(link, topo::kMaxSeen);
  send(link, topo::Message{0, 0, 0, opts_.node_id, h});
}

void Discovery::answer(size_t link, const std::string& node, bool with_links, uint64_t now) {
  const Node* n = table_.find(node);
  if (!n) return;
  const HeardLink& heard = n->links.at(link);
  const auto& ours = opts_.links.at(link).addresses;
  // Its address on this link in a family we have there too, IPv4 first (as BFD picks).
  std::optional<IpAddr> to;
  for (int family : {AF_INET, AF_INET6}) {
    bool have = std::any_of(ours.begin(), ours.end(),
                            [&](const Prefix& p) { return p.addr.family == family; });
    auto a = std::find_if(heard.link_addrs.begin(), heard.link_addrs.end(),
                          [&](const Prefix& p) { return p.addr.family == family; });
    if (have && a != heard.link_addrs.end()) {
      to = a->addr;
      break;
    }
  }
  if (!to) return;
  topo::Hello h = hello_base(link);
  h.seen = {node};
  uint16_t flags = heard.two_way ? 0 : topo::kFlagAnswer;
  send(link, topo::Message{flags, 0, 0, opts_.node_id, h}, to);
  counters_.tx_unicast_hello++;
  if (with_links) {
    topo::Links body = links_body();
    if (!body.links.empty()) send(link, topo::Message{0, 0, 0, opts_.node_id, body}, to);
  }
  table_.set_answered(link, node, std::max<uint64_t>(now, 1));  // 0 means never
}

topo::Links Discovery::links_body() const {
  topo::Links body;
  for (const auto& [id, l] : opts_.links) {
    topo::LinkInfo info;
    for (const auto& a : l.addresses)
      if (info.subnets.size() < topo::kMaxSubnets) info.subnets.push_back(a.network());
    if (info.subnets.empty() || body.links.size() >= topo::kMaxLinks) continue;
    info.weight = l.weight;
    info.backup = l.backup;
    info.drain = l.drain;
    body.links.push_back(std::move(info));
  }
  return body;
}

void Discovery::send_links(size_t link) {
  topo::Links body = links_body();
  if (!body.links.empty()) send(link, topo::Message{0, 0, 0, opts_.node_id, body});
}

// To the group of each family the link has an address in, and to static
// peers; or to one address.
// Every datagram gets a sequence number of its own, the copies to the group of
// each family and to static peers too: a receiver hears several of them, and
// one sequence shared by all would make every copy after the first a replay.
void Discovery::send(size_t link, const topo::Message& msg, const std::optional<IpAddr>& to) {
  const auto& l = opts_.links.at(link);
  for (size_t i = 0; i < sockets_.size(); i++) {
    int family = sockets_[i].family();
    if (to && to->family != family) continue;
    auto src = std::find_if(l.addresses.begin(), l.addresses.end(),
                            [&](const Prefix& p) { return p.addr.family == family; });
    if (src == l.addresses.end()) continue;
    std::vector<IpAddr> dsts;
    if (to) {
      dsts.push_back(*to);
    } else {
      dsts.push_back(family == AF_INET ? opts_.cfg.group4 : opts_.cfg.group6);
      for (const auto& u : l.unicast)
        if (u.family == family) dsts.push_back(u);
    }
    for (const auto& dst : dsts) {
      topo::Message m = msg;
      m.seq = seq_->next(static_cast<uint32_t>(wall_us() / 1'000'000));
      auto bytes = topo::encode(m, send_key_);
      if (!bytes) {
        log::error("{}", bytes.error().message);
        return;
      }
      queued_[i].push_back({l.ifindex, src->addr, dst, std::move(*bytes)});
    }
  }
}

void Discovery::rearm() {
  uint64_t next = std::max(start_us_, std::min(next_hello_us_, next_links_us_));
  if (!hello_now_.empty() || !answers_.empty()) next = std::max(start_us_, now_us());
  if (auto e = table_.next_expiry()) next = std::min(next, std::max(*e, start_us_));
  sd_event_source_set_time(timer_, next);
  sd_event_source_set_enabled(timer_, SD_EVENT_ONESHOT);
}

}  // namespace mlink::discovery
