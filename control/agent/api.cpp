// api.cpp - the agent's answers on its control socket (ctl/server.h), and
// the events it publishes to `mlinkctl monitor`. Documented in
// docs/OPERATIONS.md; the field names are the interface.
#include <linux/if.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <chrono>
#include <ctime>

#include "agent/agent.h"
#include "common/clock.h"
#include "common/log.h"
#include "datapath/bpf_datapath.h"
#include "flow/probe_packet.h"
#include "linkset/buckets.h"

namespace mlink::agent {

using nlohmann::json;

namespace {

// RFC 3339 UTC with milliseconds: what `monitor` stamps events with.
std::string utc_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &t);
  return fmt::format("{}.{:03}Z", buf, ts.tv_nsec / 1'000'000);
}

json error(const std::string& msg) {
  return {{"ok", false}, {"error", msg}};
}

json ok(json result) {
  return {{"ok", true}, {"result", std::move(result)}};
}

json prefixes(const std::vector<Prefix>& ps) {
  json out = json::array();
  for (const auto& p : ps) out.push_back(p.str());
  return out;
}

}  // namespace

json Agent::handle_request(const json& req) {
  const std::string cmd = req.value("cmd", "");
  if (cmd == "show") return ok(show_node());
  if (cmd == "show peers") return ok(show_peers());
  if (cmd == "show links") return ok(show_links());
  if (cmd == "show drops") return ok(show_drops());
  if (cmd == "flow get") return flow_get(req);
  if (cmd == "link set") return link_set(req);
  return error("unknown command '" + cmd + "'");
}

json Agent::show_node() const {
  json ml = json::array();
  for (const auto& p : cfg_.node.ml_address) ml.push_back(p.str());
  uint64_t up_s = (monotonic_us() - started_us_) / 1'000'000;
  return {{"node_id", cfg_.node.id},
          {"mode", cfg_.discovery.enabled ? "discovery" : "static"},
          {"version", MLINK_VERSION},
          {"uptime_s", up_s},
          {"ml_device", cfg_.node.ml_device},
          {"ml_addresses", ml},
          {"rx_mode", config::to_string(cfg_.node.rx_mode)},
          {"bfd", cfg_.bfd.enabled ? json{{"interval_ms", cfg_.bfd.interval_ms},
                                          {"multiplier", cfg_.bfd.multiplier},
                                          {"echo", cfg_.bfd.echo},
                                          {"authenticated", !cfg_.bfd.keys.empty()}}
                                   : json(nullptr)},
          {"links", links_.size()},
          {"peers", peers_.size()},
          {"config", cfg_.path}};
}

// One object per peer: its links in canonical order with the session's view
// (BFD state, echo, RTT, loss) and the datapath's (state, bucket share and
// counters of the peer's first ML address; `entries` has every address).
json Agent::show_peers() {
  json out = json::array();
  for (const auto& [key, plan] : peers_) {
    auto stats = dp_->peer_stats(plan.peer_id);
    json entries = json::array();
    std::vector<std::array<unsigned, ML_MAX_SLOTS>> shares;
    for (const auto& a : plan.ml_addresses) {
      auto it = written_.find(a);
      std::array<unsigned, ML_MAX_SLOTS> share{};
      if (it != written_.end()) {
        linkset::BucketTable t;
        std::copy(std::begin(it->second.buckets), std::end(it->second.buckets), t.begin());
        auto s = linkset::share(t);
        std::copy(s.begin(), s.begin() + ML_MAX_SLOTS, share.begin());
      }
      shares.push_back(share);
      json links = json::array();
      for (size_t s = 0; s < plan.links.size(); s++) {
        auto nh = next_hop_for(plan.links[s], a);
        bool up = it != written_.end() && it->second.slots[s].state == ML_SLOT_UP;
        links.push_back({{"link", links_[plan.links[s].link].device},
                         {"next_hop", nh ? nh->str() : ""},
                         {"state", up ? "up" : "down"},
                         {"buckets", share[s]}});
      }
      entries.push_back({{"ml_address", a.str()}, {"links", links}});
    }
    json links = json::array();
    for (size_t s = 0; s < plan.links.size(); s++) {
      const auto& pl = plan.links[s];
      json nhs = json::array();
      for (const auto& nh : {pl.nh4, pl.nh6})
        if (nh) nhs.push_back(nh->str());
      json l = {{"link", links_[pl.link].device},
                {"subnet", pl.subnet.str()},
                {"next_hops", nhs},
                {"weight", pl.weight},
                {"role", pl.backup ? "backup" : "primary"},
                {"drain", pl.drain},
                {"carrier", link_up(pl.link)},
                {"state", "down"},
                {"buckets", shares.empty() ? 0 : shares.front()[s]},
                {"packets", stats ? stats->slots[s].packets : 0},
                {"bytes", stats ? stats->slots[s].bytes : 0}};
      if (auto w = written_.find(plan.ml_addresses.front());
          w != written_.end() && w->second.slots[s].state == ML_SLOT_UP)
        l["state"] = "up";
      if (liveness_) {
        TargetKey tk{plan.key, pl.link, pl.nh4 ? *pl.nh4 : *pl.nh6};
        if (auto t = targets_.find(tk); t != targets_.end()) {
          const auto& sess = liveness_->session(t->second);
          l["session"] = bfd::to_string(sess.state());
          l["diag"] = bfd::to_string(sess.local_diag());
          l["echo"] = liveness_->echo_active(t->second) ? "active" : "off";
          l["rtt_us"] = liveness_->echo_rtt_us(t->second);
          l["echo_lost"] = liveness_->echo_lost(t->second);
          l["lossy"] = liveness_->lossy(t->second);
          l["hold_down_ms"] = damping_[tk].hold_down_us(monotonic_us()) / 1000;
        }
      }
      links.push_back(std::move(l));
    }
    json p = {{"peer", key},
              {"peer_id", plan.peer_id},
              {"ml_address", plan.ml_addresses.front().str()},
              {"hash", plan.hash == config::HashPolicy::Socket ? "socket" : "l34"},
              {"links", links},
              {"entries", entries},
              {"unshared_links", unshared_links(plan)}};
    json ml = json::array();
    for (const auto& a : plan.ml_addresses) ml.push_back(a.str());
    p["ml_addresses"] = ml;
    out.push_back(std::move(p));
  }
  return out;
}

// Links the peer advertises (its LINKS) in subnets we have no link in: a
// mismatch an operator must see (a cable in the wrong switch, a missing
// address), since mlink can only use the links both ends share.
json Agent::unshared_links(const PeerPlan& plan) const {
  json out = json::array();
  if (!discovery_ || plan.key.rfind("node:", 0) != 0) return out;
  auto node = discovery_->table().nodes().find(plan.key.substr(5));
  if (node == discovery_->table().nodes().end() || !node->second.policy) return out;
  for (const auto& li : node->second.policy->links) {
    bool shared = false;
    for (const auto& sn : li.subnets)
      for (const auto& l : links_)
        for (const auto& a : l.addresses)
          shared = shared || (a.network() == sn.network() && a.len == sn.len);
    if (!shared)
      out.push_back({{"subnets", prefixes(li.subnets)},
                     {"weight", li.weight},
                     {"role", li.backup ? "backup" : "primary"}});
  }
  return out;
}

json Agent::show_links() const {
  json out = json::array();
  for (size_t i = 0; i < links_.size(); i++) {
    const auto& l = links_[i];
    json peers = json::array();
    for (const auto& [key, plan] : peers_)
      for (const auto& pl : plan.links)
        if (pl.link == i) peers.push_back(plan.ml_addresses.front().str());
    unsigned f = link_flags_[i];
    out.push_back({{"link", l.device},
                   {"ifindex", l.ifindex},
                   {"admin", (f & IFF_UP) ? "up" : "down"},
                   {"carrier", (f & IFF_LOWER_UP) != 0},
                   {"addresses", prefixes(l.addresses)},
                   {"weight", l.weight},
                   {"role", l.backup ? "backup" : "primary"},
                   {"drain", l.drain},
                   {"peers", peers}});
  }
  return out;
}

json Agent::show_drops() const {
  json out = json::object();
  auto drops = dp_->drops();
  if (!drops) return out;
  for (unsigned r = 0; r < drops->size(); r++)
    out[datapath::drop_label(r)] = {{"packets", (*drops)[r].packets}, {"bytes", (*drops)[r].bytes}};
  return out;
}

// Run-time policy of one link: weight, backup, drain. Applied at once: the
// static plans are rebuilt from the links, discovery tells every peer (LINKS),
// and both ends rebuild their tables (weight: the smaller of the two ends;
// backup or drain: if either end says so). Not written to the config.
json Agent::link_set(const json& req) {
  std::string dev = req.value("link", "");
  auto it = std::find_if(links_.begin(), links_.end(),
                         [&](const LocalLink& l) { return l.device == dev; });
  if (it == links_.end()) return error("link set: '" + dev + "' is not one of this node's links");
  LocalLink want = *it;
  if (req.contains("weight")) {
    if (!req["weight"].is_number_unsigned() || req["weight"].get<uint64_t>() < 1 ||
        req["weight"].get<uint64_t>() > 255)
      return error("link set: weight must be 1..255");
    want.weight = static_cast<uint32_t>(req["weight"].get<uint64_t>());
  }
  for (auto [key, flag] : {std::pair{"backup", &want.backup}, {"drain", &want.drain}}) {
    if (!req.contains(key)) continue;
    if (!req[key].is_boolean())
      return error(std::string("link set: ") + key + " must be true or false");
    *flag = req[key].get<bool>();
  }
  auto plans = plan_peers(cfg_, [&] {
    auto l = links_;
    l[static_cast<size_t>(it - links_.begin())] = want;
    return l;
  }());
  if (std::holds_alternative<PlanError>(plans))
    return error("link set: " + std::get<PlanError>(plans).message);
  json before = {{"weight", it->weight}, {"backup", it->backup}, {"drain", it->drain}};
  *it = want;
  static_plans_ = std::get<std::vector<PeerPlan>>(std::move(plans));
  if (discovery_)
    discovery_->set_policy(static_cast<size_t>(it - links_.begin()),
                           static_cast<uint8_t>(want.weight), want.backup, want.drain);
  json after = {{"weight", want.weight}, {"backup", want.backup}, {"drain", want.drain}};
  log::info("link {}: policy {} -> {} (mlinkctl)", dev, before.dump(), after.dump());
  publish({{"type", "policy"}, {"link", dev}, {"from", before}, {"to", after}});
  sync_peers("policy");
  return ok({{"link", dev}, {"from", before}, {"to", after}});
}

// The datapath's own answer: ml_egress run on a crafted packet of the flow
// (BpfDatapath::probe), its decision read back, then named for people.
json Agent::flow_get(const json& req) {
  flow::FlowSpec f;
  auto addr = [&](const char* key) -> std::optional<IpAddr> {
    if (!req.contains(key) || !req[key].is_string()) return std::nullopt;
    return IpAddr::parse(req[key].get<std::string>());
  };
  auto dst = addr("dst");
  if (!dst) return error("flow get: \"dst\" must be an IP address");
  f.dst = *dst;
  if (auto src = addr("src")) {
    f.src = *src;
  } else if (req.contains("src")) {
    return error("flow get: \"src\" must be an IP address");
  } else {
    for (const auto& p : cfg_.node.ml_address)
      if (p.addr.family == f.dst.family) f.src = p.addr;
  }
  auto proto = flow::parse_proto(req.value("proto", std::string("tcp")));
  if (!proto) return error("flow get: " + proto.error().message);
  f.proto = *proto;
  for (auto [key, port] : {std::pair{"sport", &f.sport}, {"dport", &f.dport}}) {
    if (!req.contains(key)) continue;
    if (!req[key].is_number_unsigned() || req[key].get<uint64_t>() > 65535)
      return error(std::string("flow get: \"") + key + "\" must be 0..65535");
    *port = static_cast<uint16_t>(req[key].get<uint64_t>());
  }
  auto frame = flow::probe_frame(f);
  if (!frame) return error("flow get: " + frame.error().message);
  auto pr = dp_->probe(*frame);
  if (!pr) return error("flow get: " + pr.error().message);
  json out = {{"src", f.src.str()}, {"dst", f.dst.str()}, {"proto", f.proto}, {"sport", f.sport},
              {"dport", f.dport},   {"verdict", "pass"},  {"peer", nullptr},  {"link", nullptr}};
  const ml_decision& d = pr->decision;
  if (d.magic != ML_DECISION_MAGIC) {
    out["why"] = f.dst.str() + " is not a peer's ML address: the kernel routes it as usual";
    return ok(out);
  }
  out["peer"] = f.dst.str();
  out["peer_id"] = d.peer_id;
  out["hash"] = d.hash;
  out["bucket"] = d.bucket;
  out["verdict"] = pr->verdict == TC_ACT_REDIRECT ? "redirect"
                   : pr->verdict == TC_ACT_SHOT   ? "drop"
                                                  : "pass";
  auto w = written_.find(f.dst);
  const PeerPlan* plan = nullptr;
  for (const auto& [key, p] : peers_)
    if (std::find(p.ml_addresses.begin(), p.ml_addresses.end(), f.dst) != p.ml_addresses.end())
      plan = &p;
  if (d.slot >= ML_MAX_SLOTS || !plan || d.slot >= plan->links.size()) {
    out["why"] = fmt::format("bucket {} of {} has no link: no link to this peer is up", d.bucket,
                             ML_BUCKETS);
    return ok(out);
  }
  const auto& pl = plan->links[d.slot];
  auto nh = next_hop_for(pl, f.dst);
  bool up = w != written_.end() && w->second.slots[d.slot].state == ML_SLOT_UP;
  bool moved = false;
  if (auto o = overrides_.find(f.dst); o != overrides_.end())
    moved = o->second.slot[d.bucket % ML_BUCKETS] != ML_SLOT_NONE;
  out["slot"] = d.slot;
  out["link"] = links_[pl.link].device;
  out["next_hop"] = nh ? nh->str() : "";
  out["link_state"] = up ? "up" : "down";
  out["why"] =
      fmt::format("{} hash {:#010x} -> bucket {} of {} -> slot {} ({}, {} weight {}{}){}",
                  plan->hash == config::HashPolicy::Socket ? "socket" : "l34", d.hash, d.bucket,
                  ML_BUCKETS, d.slot, links_[pl.link].device, pl.backup ? "backup" : "primary",
                  pl.weight, up ? "" : ", down: the packet is dropped",
                  moved ? "; the rebalancer placed this bucket there (load)" : "");
  return ok(out);
}

void Agent::publish(json event) {
  if (!ctl_) return;
  event["time"] = utc_now();
  event["node_id"] = cfg_.node.id;
  ctl_->publish(event);
}

Status Agent::start_control() {
  auto srv =
      ctl::Server::listen(control_path_, [this](const json& req) { return handle_request(req); });
  if (!srv) return srv.error();
  ctl_ = std::move(*srv);
  return ctl_->attach(loop_);
}

}  // namespace mlink::agent
