// api.cpp - the agent's answers on its control socket (ctl/server.h), and
// the events it publishes to `mlinkctl monitor`. Documented in
// docs/OPERATIONS.md; the field names are the interface.
#include <linux/if.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <set>
#include <utility>

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
  if (cmd == "link add") return link_add(req);
  if (cmd == "link del") return link_del(req);
  if (cmd == "reload") return reload("mlinkctl");
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
        links.push_back({{"link", links_.at(plan.links[s].link).device},
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
      ml_counter counted =
          stats ? link_counters_.total(plan.peer_id, s, slot_counters(*stats)) : ml_counter{};
      json l = {{"link", links_.at(pl.link).device},
                {"subnet", pl.subnet.str()},
                {"next_hops", nhs},
                {"weight", pl.weight},
                {"role", pl.backup ? "backup" : "primary"},
                {"drain", pl.drain},
                {"carrier", link_up(pl.link)},
                {"state", "down"},
                {"buckets", shares.empty() ? 0 : shares.front()[s]},
                {"packets", counted.packets},
                {"bytes", counted.bytes}};
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
      for (const auto& [id, l] : links_)
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
  for (const auto& [i, l] : links_) {
    json peers = json::array();
    for (const auto& [key, plan] : peers_)
      for (const auto& pl : plan.links)
        if (pl.link == i) peers.push_back(plan.ml_addresses.front().str());
    unsigned f = l.flags;
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

namespace {

// The policy keys of `link set` / `link add` in a request, onto l; an error
// message when one is bad (then l is unchanged).
std::optional<std::string> parse_policy(const json& req, LocalLink& l) {
  LocalLink want = l;
  if (req.contains("weight")) {
    if (!req["weight"].is_number_unsigned() || req["weight"].get<uint64_t>() < 1 ||
        req["weight"].get<uint64_t>() > 255)
      return "weight must be 1..255";
    want.weight = static_cast<uint32_t>(req["weight"].get<uint64_t>());
  }
  for (auto [key, flag] : {std::pair{"backup", &want.backup}, {"drain", &want.drain}}) {
    if (!req.contains(key)) continue;
    if (!req[key].is_boolean()) return std::string(key) + " must be true or false";
    *flag = req[key].get<bool>();
  }
  l = want;
  return std::nullopt;
}

json policy_json(const LocalLink& l) {
  return {{"weight", l.weight}, {"backup", l.backup}, {"drain", l.drain}};
}

}  // namespace

// Run-time policy of one link: weight, backup, drain. Applied at once: the
// static plans are rebuilt from the links, discovery tells every peer (LINKS),
// and both ends rebuild their tables (weight: the smaller of the two ends;
// backup or drain: if either end says so). Not written to the config.
json Agent::link_set(const json& req) {
  std::string dev = req.value("link", "");
  auto it = std::find_if(links_.begin(), links_.end(),
                         [&](const auto& kv) { return kv.second.device == dev; });
  if (it == links_.end()) return error("link set: '" + dev + "' is not one of this node's links");
  Links want = links_;
  LocalLink& l = want.at(it->first);
  if (auto e = parse_policy(req, l)) return error("link set: " + *e);
  json before = policy_json(it->second), after = policy_json(l);
  if (auto s = apply_links(std::move(want), "policy"); !s)
    return error("link set: " + s.error().message);
  log::info("link {}: policy {} -> {} (mlinkctl)", dev, before.dump(), after.dump());
  publish({{"type", "policy"}, {"link", dev}, {"from", before}, {"to", after}});
  return ok({{"link", dev}, {"from", before}, {"to", after}});
}

// A link taken into service at run time (not written to the config: a
// reload or restart goes back to the file). It gets this node's sysctls,
// the ingress program and discovery at once; peers that share its subnet
// find it within one hello.
json Agent::link_add(const json& req) {
  std::string dev = req.value("link", "");
  if (dev.empty()) return error("link add: which device?");
  if (std::any_of(links_.begin(), links_.end(),
                  [&](const auto& kv) { return kv.second.device == dev; }))
    return error("link add: '" + dev + "' is already one of this node's links");
  if (dev == cfg_.node.ml_device) return error("link add: '" + dev + "' is the ML device");
  auto l = read_link(dev);
  if (!l) return error("link add: " + l.error().message);
  if (auto e = parse_policy(req, *l)) return error("link add: " + *e);
  if (std::all_of(l->addresses.begin(), l->addresses.end(),
                  [](const Prefix& p) { return p.addr.is_link_local_v6(); }))
    return error("link add: " + dev +
                 " has no address to reach peers at (mlink reads a link's addresses when it "
                 "is added)");
  Links want = links_;
  size_t id = next_link_id_;
  want.emplace(id, *l);
  if (auto s = apply_links(std::move(want), "mlinkctl"); !s)
    return error("link add: " + s.error().message);
  return ok({{"link", dev},
             {"ifindex", l->ifindex},
             {"addresses", prefixes(l->addresses)},
             {"weight", l->weight},
             {"role", l->backup ? "backup" : "primary"}});
}

// Out of service at run time: its buckets move at once, its sessions end
// with AdminDown (the peer takes it out within a round trip), then its
// ingress program, group membership, sysctls and neighbours go.
json Agent::link_del(const json& req) {
  std::string dev = req.value("link", "");
  auto it = std::find_if(links_.begin(), links_.end(),
                         [&](const auto& kv) { return kv.second.device == dev; });
  if (it == links_.end()) return error("link del: '" + dev + "' is not one of this node's links");
  if (links_.size() == 1)
    return error("link del: '" + dev + "' is this node's only link (stop mlinkd instead)");
  Links want = links_;
  want.erase(it->first);
  if (auto s = apply_links(std::move(want), "mlinkctl"); !s)
    return error("link del: " + s.error().message);
  return ok({{"link", dev}});
}

json Agent::reload(const char* who) {
  auto fail = [&](const std::string& msg) {
    log::error("reload ({}): {}; still running on the previous configuration", who, msg);
    publish({{"type", "config"}, {"action", "reload"}, {"ok", false}, {"error", msg}});
    return error(msg);
  };
  auto loaded = config::load(cfg_.path);
  if (loaded.error) return fail(loaded.error->str());
  config::Config next = std::move(*loaded.config);
  auto exists = [this](const std::string& d) { return static_cast<bool>(rtnl_.link_get(d)); };
  if (auto e = config::check_devices(next, exists)) return fail(e->str());
  if (auto e = config::restart_only_change(cfg_, next)) return fail(e->str());
  // The file decides which links run and their weight and role; a link that
  // stays keeps its id, addresses and drain (drain is maintenance, not config).
  Links want;
  json changes = json::array();
  size_t id = next_link_id_;
  for (size_t i = 0; i < next.links.size(); i++) {
    const auto& cl = next.links[i];
    auto cur = std::find_if(links_.begin(), links_.end(),
                            [&](const auto& kv) { return kv.second.device == cl.device; });
    if (cur != links_.end()) {
      LocalLink l = cur->second;
      l.weight = cl.weight;
      l.backup = cl.backup;
      if (l.weight != cur->second.weight || l.backup != cur->second.backup)
        changes.push_back({{"link", cl.device},
                           {"change", "policy"},
                           {"from", policy_json(cur->second)},
                           {"to", policy_json(l)}});
      want.emplace(cur->first, std::move(l));
      continue;
    }
    auto l = read_link(cl.device);
    if (!l)
      return fail(config::ConfigError{next.path, cl.line, 0,
                                      "link[" + std::to_string(i) + "].device", l.error().message}
                      .str());
    l->weight = cl.weight;
    l->backup = cl.backup;
    changes.push_back({{"link", cl.device}, {"change", "added"}});
    want.emplace(id++, std::move(*l));
  }
  for (const auto& [lid, l] : links_)
    if (!want.count(lid)) changes.push_back({{"link", l.device}, {"change", "removed"}});
  if (auto plans = plan_peers(next, want); auto* e = std::get_if<PlanError>(&plans))
    return fail(config::ConfigError{next.path, e->line, 0, e->key, e->message}.str());
  std::set<std::string> before, after;
  for (const auto& p : static_plans_) before.insert(p.key.substr(7));
  for (const auto& p : next.peers) after.insert(p.ml_address.front().str());
  for (const auto& a : after)
    if (!before.count(a)) changes.push_back({{"peer", a}, {"change", "added"}});
  for (const auto& b : before)
    if (!after.count(b)) changes.push_back({{"peer", b}, {"change", "removed"}});
  if (next.node.hash != cfg_.node.hash)
    changes.push_back({{"node", "hash"}, {"change", config::to_string(next.node.hash)}});
  config::Config prev = std::exchange(cfg_, std::move(next));
  if (auto s = apply_links(std::move(want), "reload"); !s) {
    cfg_ = std::move(prev);
    return fail(s.error().message);
  }
  log::info("reload ({}): {} applied: {}", who, cfg_.path, changes.dump());
  publish({{"type", "config"}, {"action", "reload"}, {"ok", true}, {"changes", changes}});
  return ok({{"config", cfg_.path}, {"changes", changes}});
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
  out["link"] = links_.at(pl.link).device;
  out["next_hop"] = nh ? nh->str() : "";
  out["link_state"] = up ? "up" : "down";
  out["why"] =
      fmt::format("{} hash {:#010x} -> bucket {} of {} -> slot {} ({}, {} weight {}{}){}",
                  plan->hash == config::HashPolicy::Socket ? "socket" : "l34", d.hash, d.bucket,
                  ML_BUCKETS, d.slot, links_.at(pl.link).device, pl.backup ? "backup" : "primary",
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
