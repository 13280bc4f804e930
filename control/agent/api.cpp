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
#include "agent/reload_plan.h"
#include "common/clock.h"
#include "common/log.h"
#include "ctl/commands.h"
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

// Fields were checked against ctl::agent_commands() (ctl/commands.cpp): a
// handler reads them with the Request accessors, which cannot throw.
json Agent::handle_request(const ctl::Request& req) {
  const std::string& cmd = req.cmd();
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
          {"links", links().size()},
          {"peers", controller_->registry().peers().size()},
          {"config", cfg_.path}};
}

// One object per peer: its links in canonical order with the session's view
// (BFD state, echo, RTT, loss) and the datapath's (state, bucket share and
// counters of the peer's first ML address; `entries` has every address).
json Agent::show_peers() {
  json out = json::array();
  for (const auto& ps : controller_->status()) {
    const PeerPlan& plan = *ps.plan;
    json entries = json::array();
    for (const auto& e : ps.entries) {
      json links = json::array();
      for (const auto& s : e.slots)
        links.push_back({{"link", s.device},
                         {"next_hop", s.next_hop ? s.next_hop->str() : ""},
                         {"state", s.up ? "up" : "down"},
                         {"buckets", s.buckets}});
      entries.push_back({{"ml_address", e.ml_address.str()}, {"links", links}});
    }
    json links = json::array();
    for (const auto& ls : ps.links) {
      const PeerLink& pl = *ls.plan;
      json nhs = json::array();
      for (const auto& nh : {pl.nh4, pl.nh6})
        if (nh) nhs.push_back(nh->str());
      json l = {{"link", ls.device},
                {"subnet", pl.subnet.str()},
                {"next_hops", nhs},
                {"weight", pl.weight},
                {"role", pl.backup ? "backup" : "primary"},
                {"drain", pl.drain},
                {"carrier", ls.carrier},
                {"state", ls.up ? "up" : "down"},
                {"buckets", ls.buckets},
                {"packets", ls.counted.packets},
                {"bytes", ls.counted.bytes}};
      if (const auto& si = ls.session) {
        l["session"] = bfd::to_string(si->state);
        l["diag"] = bfd::to_string(si->diag);
        l["echo"] = si->echo_active ? "active" : "off";
        l["echo_mode"] = !si->echo_active ? "-" : si->echo_group ? "group" : "unicast";
        l["rtt_us"] = si->echo_rtt_us;
        l["echo_lost"] = si->echo_lost;
        l["lossy"] = si->lossy;
        l["hold_down_ms"] = ls.hold_down_ms;
      }
      links.push_back(std::move(l));
    }
    json ml = json::array();
    for (const auto& a : plan.ml_addresses) ml.push_back(a.str());
    out.push_back({{"peer", plan.key.str()},
                   {"peer_id", plan.peer_id},
                   {"ml_address", plan.ml_addresses.front().str()},
                   {"hash", config::to_string(plan.hash)},
                   {"spread", config::to_string(plan.spread)},
                   {"links", links},
                   {"entries", entries},
                   {"unshared_links", unshared_links(plan)},
                   {"ml_addresses", ml}});
  }
  return out;
}

// Links the peer advertises (its LINKS) in subnets we have no link in: a
// mismatch an operator must see (a cable in the wrong switch, a missing
// address), since mlink can only use the links both ends share.
json Agent::unshared_links(const PeerPlan& plan) const {
  json out = json::array();
  if (!discovery_ || !plan.key.is_node()) return out;
  auto node = discovery_->table().nodes().find(plan.key.id);
  if (node == discovery_->table().nodes().end() || !node->second.policy) return out;
  for (const auto& li : node->second.policy->links) {
    bool shared = false;
    for (const auto& sn : li.subnets)
      for (const auto& [id, l] : links())
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
  for (const auto& [i, l] : links()) {
    json peers = json::array();
    for (const auto& [key, plan] : controller_->registry().peers())
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
std::optional<std::string> parse_policy(const ctl::Request& req, LocalLink& l) {
  LocalLink want = l;
  if (req.has("weight")) {
    auto w = req.number("weight");
    if (!w || *w < 1 || *w > 255) return "weight must be 1..255";
    want.weight = static_cast<uint32_t>(*w);
  }
  for (auto [key, flag] : {std::pair{"backup", &want.backup}, {"drain", &want.drain}})
    if (auto v = req.flag(key)) *flag = *v;
  l = want;
  return std::nullopt;
}

}  // namespace

// Run-time policy of one link: weight, backup, drain. Applied at once: the
// static plans are rebuilt from the links, discovery tells every peer (LINKS),
// and both ends rebuild their tables (weight: the smaller of the two ends;
// backup or drain: if either end says so). Not written to the config.
json Agent::link_set(const ctl::Request& req) {
  std::string dev = req.text("link");
  auto it = std::find_if(links().begin(), links().end(),
                         [&](const auto& kv) { return kv.second.device == dev; });
  if (it == links().end()) return error("link set: '" + dev + "' is not one of this node's links");
  Links want = links();
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
json Agent::link_add(const ctl::Request& req) {
  std::string dev = req.text("link");
  if (dev.empty()) return error("link add: which device?");
  if (std::any_of(links().begin(), links().end(),
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
  Links want = links();
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
json Agent::link_del(const ctl::Request& req) {
  std::string dev = req.text("link");
  auto it = std::find_if(links().begin(), links().end(),
                         [&](const auto& kv) { return kv.second.device == dev; });
  if (it == links().end() && absent_links_.erase(dev))  // its device went: it will not come back
    return ok({{"link", dev}, {"absent", true}});
  if (it == links().end()) return error("link del: '" + dev + "' is not one of this node's links");
  if (links().size() == 1)
    return error("link del: '" + dev + "' is this node's only link (stop mlinkd instead)");
  Links want = links();
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
  auto read = [this](const std::string& d) { return read_link(d); };
  auto planned = plan_reload(cfg_, links(), next_link_id_, next, read, exists);
  if (auto* e = std::get_if<config::ConfigError>(&planned)) return fail(e->str());
  auto& [want, changes] = std::get<ReloadPlan>(planned);
  config::Config prev = std::exchange(cfg_, std::move(next));
  controller_->set_spreading(Spreading::of(cfg_.node));
  if (auto s = apply_links(std::move(want), "reload"); !s) {
    cfg_ = std::move(prev);
    controller_->set_spreading(Spreading::of(cfg_.node));
    return fail(s.error().message);
  }
  // The keys last: config::load checked them, and restart_only_change that authentication
  // stays on or off, so neither can refuse them now.
  if (liveness_)
    if (auto s = liveness_->set_keys(cfg_.bfd.keys, cfg_.bfd.send_key_id); !s)
      log::error("reload ({}): BFD keys: {}", who, s.error().message);
  if (discovery_)
    if (auto s = discovery_->set_keys(cfg_.discovery.keys, cfg_.discovery.send_key_id); !s)
      log::error("reload ({}): discovery keys: {}", who, s.error().message);
  log::info("reload ({}): {} applied: {}", who, cfg_.path, changes.dump());
  publish({{"type", "config"}, {"action", "reload"}, {"ok", true}, {"changes", changes}});
  return ok({{"config", cfg_.path}, {"changes", changes}});
}

// The datapath's own answer: ml_egress run on a crafted packet of the flow
// (BpfDatapath::probe), its decision read back, then named for people.
json Agent::flow_get(const ctl::Request& req) {
  flow::FlowSpec f;
  auto addr = [&](const char* key) -> std::optional<IpAddr> {
    if (!req.has(key)) return std::nullopt;
    return IpAddr::parse(req.text(key));
  };
  auto dst = addr("dst");
  if (!dst) return error("flow get: \"dst\" must be an IP address");
  f.dst = *dst;
  if (auto src = addr("src")) {
    f.src = *src;
  } else if (req.has("src")) {
    return error("flow get: \"src\" must be an IP address");
  } else {
    for (const auto& p : cfg_.node.ml_address)
      if (p.addr.family == f.dst.family) f.src = p.addr;
  }
  auto proto = flow::parse_proto(req.text("proto", "tcp"));
  if (!proto) return error("flow get: " + proto.error().message);
  f.proto = *proto;
  for (auto [key, port] : {std::pair{"sport", &f.sport}, {"dport", &f.dport}}) {
    if (!req.has(key)) continue;
    auto v = req.number(key);
    if (!v || *v > 65535) return error(std::string("flow get: \"") + key + "\" must be 0..65535");
    *port = static_cast<uint16_t>(*v);
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
  const PeerPlan* plan = controller_->registry().owner_of(f.dst);
  if (d.slot >= ML_MAX_SLOTS || !plan || d.slot >= plan->links.size()) {
    out["why"] = fmt::format("bucket {} of {} has no link: no link to this peer is up", d.bucket,
                             ML_BUCKETS);
    return ok(out);
  }
  const auto& pl = plan->links[d.slot];
  const std::string& dev = links().at(pl.link).device;
  auto nh = next_hop_for(pl, f.dst);
  const ml_peer* w = controller_->entries().written(f.dst);
  bool up = w && w->slots[d.slot].state == ML_SLOT_UP;
  bool moved = controller_->entries().overridden(f.dst, d.bucket);
  out["slot"] = d.slot;
  out["link"] = dev;
  out["next_hop"] = nh ? nh->str() : "";
  out["link_state"] = up ? "up" : "down";
  out["why"] = fmt::format("{} hash {:#010x} -> bucket {} of {} -> slot {} ({}, {} weight {}{}){}",
                           config::to_string(plan->hash), d.hash, d.bucket, ML_BUCKETS, d.slot, dev,
                           pl.backup ? "backup" : "primary", pl.weight,
                           up ? "" : ", down: the packet is dropped",
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
  auto srv = ctl::Server::listen(control_path_, ctl::agent_commands(),
                                 [this](const ctl::Request& req) { return handle_request(req); });
  if (!srv) return srv.error();
  ctl_ = std::move(*srv);
  return ctl_->attach(loop_);
}

}  // namespace mlink::agent
