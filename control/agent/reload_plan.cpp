#include "agent/reload_plan.h"

#include <algorithm>
#include <set>

namespace mlink::agent {

using nlohmann::json;

json policy_json(const LocalLink& l) {
  return {{"weight", l.weight}, {"backup", l.backup}, {"drain", l.drain}};
}

std::variant<ReloadPlan, config::ConfigError> plan_reload(const config::Config& running,
                                                          const Links& links, size_t next_link_id,
                                                          const config::Config& next,
                                                          const ReadLink& read_link,
                                                          const config::DeviceExists& exists) {
  if (auto e = config::check_devices(next, exists)) return *e;
  if (auto e = config::restart_only_change(running, next)) return *e;
  ReloadPlan plan;
  size_t id = next_link_id;
  for (size_t i = 0; i < next.links.size(); i++) {
    const auto& cl = next.links[i];
    auto cur = std::find_if(links.begin(), links.end(),
                            [&](const auto& kv) { return kv.second.device == cl.device; });
    if (cur != links.end()) {
      LocalLink l = cur->second;
      l.weight = cl.weight;
      l.backup = cl.backup;
      if (l.weight != cur->second.weight || l.backup != cur->second.backup)
        plan.changes.push_back({{"link", cl.device},
                                {"change", "policy"},
                                {"from", policy_json(cur->second)},
                                {"to", policy_json(l)}});
      plan.links.emplace(cur->first, std::move(l));
      continue;
    }
    auto l = read_link(cl.device);
    if (!l)
      return config::ConfigError{next.path, cl.line, 0, "link[" + std::to_string(i) + "].device",
                                 l.error().message};
    l->weight = cl.weight;
    l->backup = cl.backup;
    plan.changes.push_back({{"link", cl.device}, {"change", "added"}});
    plan.links.emplace(id++, std::move(*l));
  }
  for (const auto& [lid, l] : links)
    if (!plan.links.count(lid)) plan.changes.push_back({{"link", l.device}, {"change", "removed"}});
  if (auto plans = plan_peers(next, plan.links); auto* e = std::get_if<PlanError>(&plans))
    return config::ConfigError{next.path, e->line, 0, e->key, e->message};
  std::set<std::string> before, after;
  for (const auto& p : running.peers) before.insert(p.ml_address.front().str());
  for (const auto& p : next.peers) after.insert(p.ml_address.front().str());
  for (const auto& a : after)
    if (!before.count(a)) plan.changes.push_back({{"peer", a}, {"change", "added"}});
  for (const auto& b : before)
    if (!after.count(b)) plan.changes.push_back({{"peer", b}, {"change", "removed"}});
  // Keys are named by id only: the bytes never leave the key file.
  auto keys_json = [](const KeyMap& keys, std::optional<uint32_t> send) {
    json ids = json::array();
    for (const auto& [id, k] : keys) ids.push_back(id);
    return json{{"key_ids", ids},
                {"send_key_id", keys.empty() ? json() : json(send.value_or(keys.rbegin()->first))}};
  };
  auto key_change = [&](const char* proto, const KeyMap& a, std::optional<uint32_t> sa,
                        const KeyMap& b, std::optional<uint32_t> sb) {
    json from = keys_json(a, sa), to = keys_json(b, sb);
    if (a != b || from != to)
      plan.changes.push_back({{proto, "keys"}, {"change", "keys"}, {"from", from}, {"to", to}});
  };
  key_change("bfd", running.bfd.keys, running.bfd.send_key_id, next.bfd.keys, next.bfd.send_key_id);
  if (running.discovery.enabled)
    key_change("discovery", running.discovery.keys, running.discovery.send_key_id,
               next.discovery.keys, next.discovery.send_key_id);
  if (next.node.hash != running.node.hash)
    plan.changes.push_back({{"node", "hash"}, {"change", config::to_string(next.node.hash)}});
  if (next.node.spread != running.node.spread)
    plan.changes.push_back({{"node", "spread"}, {"change", config::to_string(next.node.spread)}});
  if (next.node.flowlet_gap_us != running.node.flowlet_gap_us)
    plan.changes.push_back({{"node", "flowlet_gap_us"}, {"change", next.node.flowlet_gap_us}});
  if (next.node.socket_queue_limit != running.node.socket_queue_limit)
    plan.changes.push_back(
        {{"node", "socket_queue_limit"},
         {"change", next.node.socket_queue_limit ? nlohmann::json(*next.node.socket_queue_limit)
                                                 : nlohmann::json("by spread")}});
  return plan;
}

}  // namespace mlink::agent
