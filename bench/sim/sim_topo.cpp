// sim_topo.cpp - the simulated peers' side of the topology protocol (docs/PROTOCOL.md):
// HELLOs with their SEEN pages, LINKS, and the unicast answers to the agent's asks.
#include <algorithm>

#include "sim.h"
#include "sim_util.h"

namespace mlink::sim {

void Sim::topo_rx(unsigned link, uint64_t now) {
  static BatchRx rx;
  bool more = true;
  for (int b = 0; b < kBatchesPerCallback && more; b++)
    for (const Rx& r : rx.read(links_[link].topo_fd, &more)) handle_topo(link, r, now);
}

void Sim::handle_topo(unsigned link, const Rx& r, uint64_t now) {
  Link& l = links_[link];
  if (r.ttl != topo::kTtl) {
    c_.topo_bad_ttl++;
    return;
  }
  auto decoded = topo::decode(r.bytes, topo_keys_);
  if (std::holds_alternative<topo::Reject>(decoded)) {
    c_.topo_rejected++;
    return;
  }
  auto& m = std::get<topo::Message>(decoded);
  if (node_of_id(m.node_id)) return;  // one of ours (should not come back: no loop)
  if (!l.replay.accept(m.node_id, m.key_id, m.seq)) {
    c_.topo_replay++;
    return;
  }
  c_.topo_rx++;
  bool multicast = r.dst.s_addr == group_.s_addr;
  std::optional<unsigned> to;
  if (!multicast) {
    c_.topo_rx_unicast++;
    to = node_of(r.dst, link);
    if (!to) return;
  }
  const auto* h = std::get_if<topo::Hello>(&m.body);
  if (!h) return;  // LINKS: the agent's link set is of no use to the simulated nodes
  auto epoch = static_cast<uint32_t>(m.seq >> 32);
  if (l.agent_id != m.node_id) {
    if (!l.agent_id.empty())
      out("sim topology: {} on {} replaces {} (one agent per link)", m.node_id, l.dev, l.agent_id);
    l.agent_id = m.node_id;
    l.agent_epoch = 0;
  }
  if (auto a = v4_of(h->link_addrs); a && (!l.agent_known || a->s_addr != l.agent_addr.s_addr)) {
    l.agent_addr = *a;
    if (l.agent_known) allow_echoes(link);
    if (!l.agent_known) {
      l.agent_known = true;
      out("sim topology: agent {} on {} at {}", m.node_id, l.dev, ip_str(*a));
      start_sessions(link, now);
    }
  }
  l.agent_until = now + uint64_t{std::min<uint32_t>(h->hold_ms, 60000)} * 1000;
  if (epoch != l.agent_epoch) l.agent_epoch = epoch;  // new or restarted: everyone answers
  // Who it names: a node named by the agent stops asking.
  for (const auto& id : h->seen)
    if (auto k = node_of_id(id)) pnl_[size_t{link} * o_.peers + *k].named = true;
  auto visit = [&](unsigned k) {
    PerNodeLink& p = pnl_[size_t{link} * o_.peers + k];
    if (p.answered_epoch != l.agent_epoch) {
      p.answered_epoch = l.agent_epoch;
      if (o_.answer_spread_ms == 0) {
        answer(k, link, true, now);
      } else {
        p.answer_pending = true;
        p.answer_links = true;
        std::uniform_int_distribution<uint64_t> d(0, uint64_t{o_.answer_spread_ms} * 1000);
        schedule(kAnswer, size_t{link} * o_.peers + k, &p.answer_at, now + d(rng_) + 1);
      }
    } else if (!multicast && (m.flags & topo::kFlagAnswer) &&
               now >= p.last_answer_us + uint64_t{o_.hello_ms} * 250) {
      answer(k, link, false, now);
    }
  };
  if (to) {
    visit(*to);
  } else {
    for (unsigned k = 0; k < o_.peers; k++) visit(k);
  }
}

std::vector<std::string> Sim::seen_page(unsigned node, unsigned link) {
  const Link& l = links_[link];
  std::vector<std::string> page;
  if (!o_.seen_page) {
    page.push_back(l.agent_id);
    return page;
  }
  // Every node on the segment but this one: the other simulated nodes and the agent.
  size_t total = sorted_ids_.size() + 1;
  Node& n = nodes_[node];
  auto agent_at = static_cast<size_t>(
      std::lower_bound(sorted_ids_.begin(), sorted_ids_.end(), l.agent_id) - sorted_ids_.begin());
  for (size_t step = 0; step < total && page.size() < topo::kMaxSeen; step++) {
    size_t i = (n.page + step) % total;
    // Position i in the merged order: the agent sits at agent_at.
    const std::string& id = i == agent_at  ? l.agent_id
                            : i < agent_at ? sorted_ids_[i]
                                           : sorted_ids_[i - 1];
    if (id != n.id) page.push_back(id);
  }
  return page;
}

void Sim::send_topo(unsigned node, unsigned link, const topo::Message& msg, in_addr dst) {
  topo::Message m = msg;
  m.seq = nodes_[node].seq.next(static_cast<uint32_t>(wall_us() / 1'000'000));
  auto bytes = topo::encode(m, topo_send_key_);
  if (!bytes) {
    out("sim topology: encode: {}", bytes.error().message);
    return;
  }
  links_[link].topo_tx->queue(link_addr(link, node), dst, o_.topo_port, *bytes);
}

static topo::Hello base_hello(in_addr ml, in_addr la, uint32_t hello_ms) {
  topo::Hello h;
  Prefix p;
  p.addr = to_ip(ml);
  p.len = 16;
  h.ml_addrs.push_back(p);
  p.addr = to_ip(la);
  h.link_addrs.push_back(p);
  h.hold_ms = hello_ms * 7 / 2;
  return h;
}

void Sim::send_hello(unsigned node, uint64_t now) {
  for (unsigned i = 0; i < o_.links; i++) {
    const Link& l = links_[i];
    topo::Hello h = base_hello(ml_addr(node), link_addr(i, node), o_.hello_ms);
    bool heard = !l.agent_id.empty() && now < l.agent_until;
    if (heard) h.seen = seen_page(node, i);
    send_topo(node, i, topo::Message{0, 0, 0, nodes_[node].id, h}, group_);
    // Heard the agent, not named by it yet: ask (docs/PROTOCOL.md, "ANSWER flag").
    PerNodeLink& p = pnl_[size_t{i} * o_.peers + node];
    if (heard && l.agent_known && !p.named) {
      topo::Hello ask = base_hello(ml_addr(node), link_addr(i, node), o_.hello_ms);
      ask.seen = {l.agent_id};
      send_topo(node, i, topo::Message{topo::kFlagAnswer, 0, 0, nodes_[node].id, ask},
                l.agent_addr);
      c_.asks++;
    }
  }
  if (o_.seen_page) nodes_[node].page = (nodes_[node].page + topo::kMaxSeen) % (o_.peers + 1);
}

void Sim::send_links(unsigned node) {
  for (unsigned i = 0; i < o_.links; i++)
    send_topo(node, i, topo::Message{0, 0, 0, nodes_[node].id, links_body_}, group_);
}

// A unicast HELLO naming the agent (ANSWER while it has not named us), and LINKS.
void Sim::answer(unsigned node, unsigned link, bool with_links, uint64_t now) {
  const Link& l = links_[link];
  if (!l.agent_known) return;
  PerNodeLink& p = pnl_[size_t{link} * o_.peers + node];
  topo::Hello h = base_hello(ml_addr(node), link_addr(link, node), o_.hello_ms);
  h.seen = {l.agent_id};
  uint16_t flags = p.named ? 0 : topo::kFlagAnswer;
  send_topo(node, link, topo::Message{flags, 0, 0, nodes_[node].id, h}, l.agent_addr);
  if (with_links)
    send_topo(node, link, topo::Message{0, 0, 0, nodes_[node].id, links_body_}, l.agent_addr);
  p.last_answer_us = now;
  c_.answers++;
}

}  // namespace mlink::sim
