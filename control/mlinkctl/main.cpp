// mlinkctl - inspect and administer a running mlink node, like `ip`: text for
// people, `-j` for JSON. Asks the agent over its control socket
// (/run/mlink/<node>.sock, see docs/OPERATIONS.md); `show maps` and
// `show drops` read the datapath's pinned maps (<bpffs>/mlink/<node>/)
// directly, which works even while the agent is restarting. `keygen` prints
// a new key line for a key file and needs neither.
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

#include "common/keygen.h"
#include "datapath/bpf_datapath.h"
#include "datapath/datapath.h"
#include "linkset/buckets.h"
#include "pinned_maps.h"
#include "text_output.h"

using namespace mlinkctl;

namespace {

using nlohmann::json;

// A client of the agent's control socket: one JSON request per line, one reply
// line each.
class ControlClient {
 public:
  explicit ControlClient(const std::string& path) : path_(path) {
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
  ~ControlClient() { close(fd_); }
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

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
  // Set before the subcommands are added: they inherit the footer.
  app.footer(
      "Exit status: 0 ok; 1 on any error, usage errors included (`flow get` also exits 1 when "
      "DST is no peer's ML address). Errors go to stderr.");
  app.failure_message([](const CLI::App* a, const CLI::Error& e) {
    return "mlinkctl: " + CLI::FailureMessage::simple(a, e);
  });
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
  auto* keygen = app.add_subcommand(
      "keygen",
      "print a new key line \"<id> <hex>\" for a key file: bfd (20 bytes, id 0..255) or topo "
      "(32 bytes, id 0..65535); e.g. (umask 077; mlinkctl keygen topo > /etc/mlink/topo.key)");
  std::string key_proto;
  uint32_t key_id = 1;
  keygen->add_option("protocol", key_proto, "bfd | topo")
      ->required()
      ->check(CLI::IsMember({"bfd", "topo"}));
  keygen->add_option("--id", key_id, "the key's id (default 1; a rotation adds the next one)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints the help to stdout (exit 0); a usage error prints CLI11's
    // message to stderr and, like every other error, exits 1. CLI11 asks for
    // a missing subcommand before it rejects an unexpected argument: for
    // `mlinkctl frobnicate`, name the argument instead.
    auto extra = app.remaining(true);
    bool unexpected = e.get_name() == "RequiredError" && !extra.empty();
    return (unexpected ? app.exit(CLI::ExtrasError(extra)) : app.exit(e)) == 0 ? 0 : 1;
  }

  if (keygen->parsed()) {  // needs no agent, nor root
    auto line = mlink::generate_key_line(
        key_proto == "bfd" ? mlink::kBfdKeyRules : mlink::kTopoKeyRules, key_id);
    if (!line) {
      fmt::print(stderr, "mlinkctl: keygen: {}\n", line.error().message);
      return 1;
    }
    fmt::print("{}", *line);
    return 0;
  }
  try {
    if (node.empty()) node = find_node(run_dir);
    if (show->parsed() && (what == "maps" || what == "drops")) {
      std::string dir = bpffs + "/mlink/" + node;
      Pins p = open_pins(dir);
      json out = what == "maps" ? peers_json(p) : drops_json(p);
      if (as_json)
        fmt::print("{}\n", out.dump());
      else if (what == "maps")
        print_maps(out);
      else
        print_drops(out);
      return 0;
    }
    ControlClient client(run_dir + "/" + node + ".sock");
    if (monitor->parsed()) {
      client.call({{"cmd", "monitor"}});
      std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one event per line, as it comes
      for (;;) {
        json line = json::parse(client.next_line());
        if (as_json)
          fmt::print("{}\n", line["event"].dump());
        else
          print_event(line["event"]);
        std::fflush(stdout);
      }
    }
    if (link_set->parsed()) {
      json out = client.call(link_request("set", link_args));
      if (as_json)
        fmt::print("{}\n", out.dump());
      else
        fmt::print("link {}: {} -> {}\n", out["link"].get<std::string>(), out["from"].dump(),
                   out["to"].dump());
      return 0;
    }
    if (link_add->parsed()) {
      json out = client.call(link_request("add", link_args));
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
      json out = client.call({{"cmd", "link del"}, {"link", del_dev}});
      if (as_json)
        fmt::print("{}\n", out.dump());
      else
        fmt::print("link {} removed\n", out["link"].get<std::string>());
      return 0;
    }
    if (reload->parsed()) {
      json out = client.call({{"cmd", "reload"}});
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
        else if (c["change"] == "keys")  // key ids only: the bytes stay in the key files
          for (const char* proto : {"bfd", "discovery"}) {
            if (!c.contains(proto)) continue;
            auto side = [](const json& k) {
              return fmt::format("ids {} signs {}", k["key_ids"].dump(), k["send_key_id"].dump());
            };
            fmt::print("  {} keys: {} -> {}\n", proto, side(c["from"]), side(c["to"]));
          }
        else
          fmt::print("  node.hash: {}\n", c["change"].get<std::string>());
      }
      return 0;
    }
    if (flow_get->parsed()) {
      json req = flow_request(flow_args);
      json out = client.call(req);
      if (as_json)
        fmt::print("{}\n", out.dump());
      else
        print_flow(out);
      return out["peer"].is_null() ? 1 : 0;  // like `ip route get`: no peer is an error
    }
    json out = client.call({{"cmd", what == "node" ? std::string("show") : "show " + what}});
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
