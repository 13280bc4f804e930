#include "text_output.h"

#include <fmt/core.h>

#include <string>

namespace mlinkctl {

using nlohmann::json;

void print_maps(const json& entries) {
  for (const auto& peer : entries) {
    std::string extra;  // what is not the default
    if (peer.value("spread", "flow") == "flowlet")
      extra = fmt::format(" spread flowlet gap {} us", peer.value("flowlet_gap_us", 0u));
    if (peer.contains("socket_queue_limit"))
      extra += fmt::format(" socket_queue_limit {}", peer.value("socket_queue_limit", 0u));
    fmt::print("entry {} peer_id {} hash {}{}\n", peer["ml_address"].get<std::string>(),
               peer["peer_id"].get<unsigned>(), peer["hash"].get<std::string>(), extra);
    for (const auto& l : peer["links"])
      fmt::print("    {:<10} via {:<24} {:<5} buckets {:>3}  packets {:>10}  bytes {:>14}\n",
                 l["link"].get<std::string>(), l["next_hop"].get<std::string>(),
                 l["state"].get<std::string>(), l["buckets"].get<unsigned>(),
                 l["packets"].get<uint64_t>(), l["bytes"].get<uint64_t>());
  }
}

void print_drops(const json& drops) {
  for (auto& [k, v] : drops.items())
    fmt::print("{:<12} packets {:>10}  bytes {:>14}\n", k, v["packets"].get<uint64_t>(),
               v["bytes"].get<uint64_t>());
}

std::string join(const json& arr) {
  std::string out;
  for (const auto& v : arr) out += (out.empty() ? "" : " ") + v.get<std::string>();
  return out;
}

void print_node(const json& n) {
  for (auto& [k, v] : n.items()) {
    std::string val = v.is_string() ? v.get<std::string>() : v.is_array() ? join(v) : v.dump();
    if (v.is_object()) {
      val.clear();
      for (auto& [ik, iv] : v.items()) val += (val.empty() ? "" : " ") + ik + " " + iv.dump();
    }
    fmt::print("{:<13} {}\n", k, val);
  }
}

void print_peers(const json& peers) {
  for (const auto& p : peers) {
    fmt::print("peer {} ({}) peer_id {} hash {}  addresses {}\n",
               p["ml_address"].get<std::string>(), p["peer"].get<std::string>(),
               p["peer_id"].get<unsigned>(), p["hash"].get<std::string>(), join(p["ml_addresses"]));
    for (const auto& l : p["links"]) {
      std::string bfd = "bfd off";
      if (l.contains("session"))
        bfd = fmt::format("bfd {:<5} echo {:<7} rtt {:>5}us lost {:>2}/32{}",
                          l["session"].get<std::string>(),
                          l.value("echo_mode", "-") == "-" ? l["echo"].get<std::string>()
                                                           : l["echo_mode"].get<std::string>(),
                          l["rtt_us"].get<uint64_t>(), l["echo_lost"].get<unsigned>(),
                          l["lossy"].get<bool>() ? " LOSSY" : "");
      fmt::print(
          "    {:<8} {:<4} via {:<30} {}  weight {} {:<7} buckets {:>3}  packets {:>10}  bytes "
          "{:>13}\n",
          l["link"].get<std::string>(), l["state"].get<std::string>(), join(l["next_hops"]), bfd,
          l["weight"].get<unsigned>(), l["role"].get<std::string>(), l["buckets"].get<unsigned>(),
          l["packets"].get<uint64_t>(), l["bytes"].get<uint64_t>());
    }
    for (const auto& u : p["unshared_links"])
      fmt::print("    not shared: the peer has a link in {} (weight {} {}) and this host none\n",
                 join(u["subnets"]), u["weight"].get<unsigned>(), u["role"].get<std::string>());
  }
}

void print_links(const json& links) {
  for (const auto& l : links)
    fmt::print("{:<8} ifindex {:<3} admin {:<4} carrier {:<3} weight {} {:<7} {}  peers {}\n",
               l["link"].get<std::string>(), l["ifindex"].get<int>(), l["admin"].get<std::string>(),
               l["carrier"].get<bool>() ? "yes" : "no", l["weight"].get<unsigned>(),
               l["role"].get<std::string>(), join(l["addresses"]), join(l["peers"]));
}

// One event of `monitor`, as a line an operator reads.
void print_event(const json& e) {
  std::string type = e.value("type", "?");
  std::string what;
  if (type == "link")
    what =
        fmt::format("peer {} link {} {} ({} buckets, {})", e.value("peer", ""), e.value("link", ""),
                    e.value("state", ""), e.value("buckets", 0), e.value("reason", ""));
  else if (type == "session")
    what =
        fmt::format("peer {} link {} BFD {} -> {} ({})", e.value("peer", ""), e.value("link", ""),
                    e.value("from", ""), e.value("to", ""), e.value("diag", ""));
  else if (type == "loss")
    what = fmt::format("peer {} link {} {} ({} of {} echoes lost)", e.value("peer", ""),
                       e.value("link", ""), e.value("lossy", false) ? "lossy" : "clean",
                       e.value("echo_lost", 0), e.value("window", 0));
  else if (type == "device")
    what = fmt::format("device {} {} (admin {}, carrier {})", e.value("link", ""),
                       e.value("state", ""), e.value("admin", ""),
                       e.value("carrier", false) ? "yes" : "no");
  else if (type == "peer")
    what = fmt::format("peer {} ({}) {} ({})", e.value("peer", ""), e.value("key", ""),
                       e.value("state", ""), e.value("reason", ""));
  else if (type == "policy")
    what = fmt::format("link {} {} -> {}", e.value("link", ""), e.value("from", json()).dump(),
                       e.value("to", json()).dump());
  else if (type == "config" && e.value("action", "") == "reload")
    what = e.value("ok", false)
               ? fmt::format("reload applied: {}", e.value("changes", json::array()).dump())
               : fmt::format("reload refused: {}", e.value("error", ""));
  else if (type == "config")
    what = fmt::format("{} {} ({})", e.value("action", ""), e.value("link", ""),
                       e.value("reason", ""));
  else
    what = e.dump();
  fmt::print("{} {:<7} {}\n", e.value("time", ""), type, what);
}

void print_flow(const json& f) {
  unsigned proto = f["proto"].get<unsigned>();
  std::string name = proto == 6    ? "tcp"
                     : proto == 17 ? "udp"
                     : proto == 1  ? "icmp"
                     : proto == 58 ? "ipv6-icmp"
                                   : std::to_string(proto);
  fmt::print("{} {}:{} -> {}:{}  {}\n", name, f["src"].get<std::string>(),
             f["sport"].get<unsigned>(), f["dst"].get<std::string>(), f["dport"].get<unsigned>(),
             f["verdict"].get<std::string>());
  if (!f["link"].is_null())
    fmt::print("    link {} via {} ({})\n", f["link"].get<std::string>(),
               f["next_hop"].get<std::string>(), f["link_state"].get<std::string>());
  fmt::print("    {}\n", f["why"].get<std::string>());
}

}  // namespace mlinkctl
