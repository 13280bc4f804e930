// mlinkctl - inspect and administer a running mlink node, like `ip`: text for
// people, `-j` for JSON. Asks the agent over its control socket
// (/run/mlink/<node>.sock, see docs/OPERATIONS.md); `show maps` and
// `show drops` read the datapath's pinned maps (<bpffs>/mlink/<node>/)
// directly, which works even while the agent is restarting.
#include <bpf/bpf.h>
#include <dirent.h>
#include <fmt/core.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datapath/bpf_datapath.h"
#include "datapath/datapath.h"
#include "linkset/buckets.h"

namespace {

using nlohmann::json;

struct Pins {
  int peers = -1, peer_stats = -1, drops = -1;
};

int open_pin(const std::string& dir, const char* name) {
  std::string path = dir + "/" + name;
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0)
    throw std::runtime_error(
        fmt::format("open {}: {} (is mlinkd running for this node?)", path, std::strerror(errno)));
  return fd;
}

json slot_json(const ml_slot& s, unsigned buckets, const ml_counter& c) {
  mlink::IpAddr nh;
  nh.family = s.nh_family;
  std::memcpy(nh.bytes.data(), s.nh, nh.family == AF_INET ? 4 : 16);
  char buf[IF_NAMESIZE] = "?";
  std::string ifname = if_indextoname(s.ifindex, buf) ? buf : std::to_string(s.ifindex);
  return {{"link", ifname},       {"ifindex", s.ifindex},
          {"next_hop", nh.str()}, {"state", s.state == ML_SLOT_UP ? "up" : "down"},
          {"buckets", buckets},   {"packets", c.packets},
          {"bytes", c.bytes}};
}

json peers_json(const Pins& p) {
  json out = json::array();
  ml_addr key{}, next{};
  ml_addr* cur = nullptr;
  while (bpf_map_get_next_key(p.peers, cur, &next) == 0) {
    key = next;
    cur = &key;
    ml_peer v{};
    if (bpf_map_lookup_elem(p.peers, &key, &v) != 0) continue;
    mlink::linkset::BucketTable t;
    std::copy(std::begin(v.buckets), std::end(v.buckets), t.begin());
    auto share = mlink::linkset::share(t);
    auto st = mlink::datapath::peer_stats_sum(p.peer_stats, v.peer_id);
    json links = json::array();
    for (unsigned s = 0; s < v.nslots && s < ML_MAX_SLOTS; s++)
      links.push_back(slot_json(v.slots[s], share[s], st ? st->slots[s] : ml_counter{}));
    out.push_back({{"ml_address", mlink::datapath::from_key(key).str()},
                   {"peer_id", v.peer_id},
                   {"hash", v.hash_policy == ML_HASH_SOCKET ? "socket" : "l34"},
                   {"links", links}});
  }
  return out;
}

json drops_json(const Pins& p) {
  json out = json::object();
  for (unsigned r = 0; r < ML_DROP_MAX; r++) {
    auto c = mlink::datapath::percpu_sum(p.drops, r);
    out[mlink::datapath::drop_label(r)] = {{"packets", c ? c->packets : 0},
                                           {"bytes", c ? c->bytes : 0}};
  }
  return out;
}

void print_maps(const json& entries) {
  for (const auto& peer : entries) {
    fmt::print("entry {} peer_id {} hash {}\n", peer["ml_address"].get<std::string>(),
               peer["peer_id"].get<unsigned>(), peer["hash"].get<std::string>());
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
        bfd = fmt::format("bfd {:<5} echo {:<6} rtt {:>5}us lost {:>2}/32{}",
                          l["session"].get<std::string>(), l["echo"].get<std::string>(),
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

// The agent's control socket: one JSON request per line, one reply line each.
class Agent {
 public:
  explicit Agent(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (fd_ < 0 || path.size() >= sizeof(sa.sun_path))
      throw std::runtime_error("control socket " + path + ": bad path");
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
      throw std::runtime_error(
          fmt::format("no running agent: connect {}: {}", path, std::strerror(errno)));
  }
  ~Agent() { close(fd_); }
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  json call(const json& req) {
    std::string line = req.dump() + "\n";
    if (send(fd_, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
      throw std::runtime_error("control socket " + path_ + ": send failed");
    json reply = json::parse(next_line());
    if (!reply.value("ok", false))
      throw std::runtime_error(reply.value("error", std::string("request failed")));
    return reply["result"];
  }

  std::string next_line() {
    for (;;) {
      if (auto pos = buf_.find('\n'); pos != std::string::npos) {
        std::string line = buf_.substr(0, pos);
        buf_.erase(0, pos + 1);
        return line;
      }
      char b[65536];
      ssize_t n = recv(fd_, b, sizeof(b), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("the agent closed the control socket");
      buf_.append(b, static_cast<size_t>(n));
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::string buf_;
};

// link set: `DEV weight N | backup on|off | drain | undrain`, several at once;
// link add: `DEV [weight N] [backup]`.
json link_request(const std::string& verb, const std::vector<std::string>& args) {
  const bool set = verb == "set";
  const std::string what = "link " + verb + ": ";
  json req = {{"cmd", "link " + verb}, {"link", args.at(0)}};
  for (size_t i = 1; i < args.size(); i++) {
    const std::string& k = args[i];
    if (set && (k == "drain" || k == "undrain")) {
      req["drain"] = k == "drain";
    } else if (!set && k == "backup") {
      req["backup"] = true;
    } else if (set && k == "backup" && i + 1 < args.size()) {
      const std::string& v = args[++i];
      if (v != "on" && v != "off") throw std::runtime_error(what + "backup on|off");
      req["backup"] = v == "on";
    } else if (k == "weight" && i + 1 < args.size()) {
      const std::string& v = args[++i];
      size_t used = 0;
      unsigned long w = 0;
      try {
        w = std::stoul(v, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != v.size()) throw std::runtime_error(what + "weight '" + v + "' is not a number");
      req["weight"] = w;
    } else {
      throw std::runtime_error(
          what + "unknown or incomplete '" + k + "' (" +
          (set ? "weight N | backup on|off | drain | undrain" : "weight N | backup") + ")");
    }
  }
  if (set && req.size() == 2) throw std::runtime_error(what + "nothing to set");
  return req;
}

// `[SRC] DST [proto P] [sport S] [dport D]`, as `ip route get` takes keywords.
json flow_request(const std::vector<std::string>& args) {
  json req = {{"cmd", "flow get"}};
  size_t i = 0;
  std::vector<std::string> addrs;
  while (i < args.size() && args[i] != "proto" && args[i] != "sport" && args[i] != "dport")
    addrs.push_back(args[i++]);
  if (addrs.empty() || addrs.size() > 2)
    throw std::runtime_error("flow get: want [SRC] DST, then proto / sport / dport");
  if (addrs.size() == 2) req["src"] = addrs[0];
  req["dst"] = addrs.back();
  for (; i < args.size(); i += 2) {
    if (i + 1 >= args.size()) throw std::runtime_error("flow get: " + args[i] + " needs a value");
    const std::string& k = args[i];
    if (k == "proto") {
      req["proto"] = args[i + 1];
    } else if (k == "sport" || k == "dport") {
      unsigned long v = 0;
      size_t used = 0;
      try {
        v = std::stoul(args[i + 1], &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != args[i + 1].size() || v > 65535)
        throw std::runtime_error("flow get: " + k + " '" + args[i + 1] + "' is not 0..65535");
      req[k] = v;
    } else {
      throw std::runtime_error("flow get: unknown keyword '" + k + "'");
    }
  }
  return req;
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

// -n is optional when exactly one agent runs on this host.
std::string find_node(const std::string& run_dir) {
  std::vector<std::string> found;
  if (auto* d = opendir(run_dir.c_str())) {
    while (auto* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".sock") == 0)
        found.push_back(n.substr(0, n.size() - 5));
    }
    closedir(d);
  }
  if (found.size() == 1) return found.front();
  if (found.empty()) throw std::runtime_error("no running agent (no socket in " + run_dir + ")");
  throw std::runtime_error(fmt::format("{} agents run here; name one with -n", found.size()));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mlinkctl: inspect and administer an mlink node"};
  std::string node, bpffs = "/sys/fs/bpf", run_dir = "/run/mlink";
  bool as_json = false;
  app.add_option("-n,--node", node,
                 "node id (as in the config's [node] id); optional when one runs");
  app.add_option("--bpffs", bpffs, "bpffs mount point (show maps, show drops)");
  app.add_option("--run-dir", run_dir, "where agents put their control sockets");
  app.add_flag("-j,--json", as_json, "print JSON (monitor: one object per line)");
  app.require_subcommand(1);
  auto* show = app.add_subcommand("show", "show state");
  std::string what = "node";
  show->add_option("what", what,
                   "node (default) | peers | links | drops | maps (the datapath's entries, "
                   "read from the pinned maps: works while no agent runs)")
      ->check(CLI::IsMember({"node", "peers", "links", "drops", "maps"}));
  auto* monitor = app.add_subcommand("monitor", "print events as they happen (until interrupted)");
  auto* link = app.add_subcommand(
      "link", "add, remove or set the policy of a link at run time (not written to the config)");
  link->require_subcommand(1);
  auto* link_set = link->add_subcommand("set", "DEV weight N | backup on|off | drain | undrain");
  std::vector<std::string> link_args;
  link_set->add_option("args", link_args, "DEV then weight N | backup on|off | drain | undrain")
      ->required();
  auto* link_add = link->add_subcommand("add", "DEV [weight N] [backup]: a link into service");
  link_add->add_option("args", link_args, "DEV then [weight N] [backup]")->required();
  auto* link_del = link->add_subcommand("del", "DEV: a link out of service");
  std::string del_dev;
  link_del->add_option("DEV", del_dev, "the link's device")->required();
  auto* reload = app.add_subcommand(
      "reload", "re-read the config and apply what changed (as SIGHUP); on error keep running");
  auto* flow = app.add_subcommand("flow", "ask the datapath about a flow");
  auto* flow_get =
      flow->add_subcommand("get", "which peer, bucket, link and next hop a flow takes now");
  flow->require_subcommand(1);
  std::vector<std::string> flow_args;
  flow_get->add_option("args", flow_args, "[SRC] DST [proto tcp|udp|icmp|N] [sport S] [dport D]")
      ->required();
  CLI11_PARSE(app, argc, argv);

  try {
    if (node.empty()) node = find_node(run_dir);
    if (show->parsed() && (what == "maps" || what == "drops")) {
      std::string dir = bpffs + "/mlink/" + node;
      Pins p{open_pin(dir, "ml_peers"), open_pin(dir, "ml_peer_stats"), open_pin(dir, "ml_drops")};
      json out = what == "maps" ? peers_json(p) : drops_json(p);
      if (as_json)
        fmt::print("{}\n", out.dump());
      else if (what == "maps")
        print_maps(out);
      else
        print_drops(out);
      return 0;
    }
    Agent agent(run_dir + "/" + node + ".sock");
    if (monitor->parsed()) {
      agent.call({{"cmd", "monitor"}});
      std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one event per line, as it comes
      for (;;) {
        json line = json::parse(agent.next_line());
        if (as_json)
          fmt::print("{}\n", line["event"].dump());
        else
          print_event(line["event"]);
        std::fflush(stdout);
      }
    }
    if (link_set->parsed()) {
      json out = agent.call(link_request("set", link_args));
      if (as_json)
        fmt::print("{}\n", out.dump());
      else
        fmt::print("link {}: {} -> {}\n", out["link"].get<std::string>(), out["from"].dump(),
                   out["to"].dump());
      return 0;
    }
    if (link_add->parsed()) {
      json out = agent.call(link_request("add", link_args));
      if (as_json)
        fmt::print("{}\n", out.dump());
      else
        fmt::print("link {} added (ifindex {}, {}, weight {}, {})\n",
                   out["link"].get<std::string>(), out["ifindex"].get<int>(),
                   join(out["addresses"]), out["weight"].get<unsigned>(),
                   out["role"].get<std::string>());
      return 0;
    }
    if (link_del->parsed()) {
      json out = agent.call({{"cmd", "link del"}, {"link", del_dev}});
      if (as_json)
        fmt::print("{}\n", out.dump());
      else
        fmt::print("link {} removed\n", out["link"].get<std::string>());
      return 0;
    }
    if (reload->parsed()) {
      json out = agent.call({{"cmd", "reload"}});
      if (as_json) {
        fmt::print("{}\n", out.dump());
        return 0;
      }
      fmt::print("reloaded {}\n", out["config"].get<std::string>());
      if (out["changes"].empty()) fmt::print("  no change\n");
      for (const auto& c : out["changes"]) {
        if (c.contains("link") && c["change"] == "policy")
          fmt::print("  link {}: {} -> {}\n", c["link"].get<std::string>(), c["from"].dump(),
                     c["to"].dump());
        else if (c.contains("link"))
          fmt::print("  link {}: {}\n", c["link"].get<std::string>(),
                     c["change"].get<std::string>());
        else if (c.contains("peer"))
          fmt::print("  peer {}: {}\n", c["peer"].get<std::string>(),
                     c["change"].get<std::string>());
        else
          fmt::print("  node.hash: {}\n", c["change"].get<std::string>());
      }
      return 0;
    }
    if (flow_get->parsed()) {
      json req = flow_request(flow_args);
      json out = agent.call(req);
      if (as_json)
        fmt::print("{}\n", out.dump());
      else
        print_flow(out);
      return out["peer"].is_null() ? 1 : 0;  // like `ip route get`: no peer is an error
    }
    json out = agent.call({{"cmd", what == "node" ? std::string("show") : "show " + what}});
    if (as_json)
      fmt::print("{}\n", out.dump());
    else if (what == "node")
      print_node(out);
    else if (what == "peers")
      print_peers(out);
    else
      print_links(out);
  } catch (const std::exception& e) {
    fmt::print(stderr, "mlinkctl: {}\n", e.what());
    return 1;
  }
  return 0;
}
