// mlinkctl - inspect a running mlink node. This first version reads the
// datapath's pinned maps directly (<bpffs>/mlink/<node>/), which works even
// while the agent is restarting; `-j` prints JSON like `ip -j`.
#include <bpf/bpf.h>
#include <fmt/core.h>
#include <net/if.h>
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

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

void print_peers(const json& peers) {
  for (const auto& peer : peers) {
    fmt::print("peer {} id {} hash {}\n", peer["ml_address"].get<std::string>(),
               peer["peer_id"].get<unsigned>(), peer["hash"].get<std::string>());
    for (const auto& l : peer["links"])
      fmt::print("    {:<10} via {:<24} {:<5} buckets {:>3}  packets {:>10}  bytes {:>14}\n",
                 l["link"].get<std::string>(), l["next_hop"].get<std::string>(),
                 l["state"].get<std::string>(), l["buckets"].get<unsigned>(),
                 l["packets"].get<uint64_t>(), l["bytes"].get<uint64_t>());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mlinkctl: inspect an mlink node"};
  std::string node = "", bpffs = "/sys/fs/bpf";
  bool as_json = false;
  app.add_option("-n,--node", node, "node id (as in the config's [node] id)")->required();
  app.add_option("--bpffs", bpffs, "bpffs mount point");
  app.add_flag("-j,--json", as_json, "print JSON");
  app.require_subcommand(1);
  auto* show = app.add_subcommand("show", "show state");
  std::string what = "peers";
  show->add_option("what", what, "peers | drops")->check(CLI::IsMember({"peers", "drops"}));
  CLI11_PARSE(app, argc, argv);

  try {
    std::string dir = bpffs + "/mlink/" + node;
    Pins p{open_pin(dir, "ml_peers"), open_pin(dir, "ml_peer_stats"), open_pin(dir, "ml_drops")};
    json out = what == "peers" ? peers_json(p) : drops_json(p);
    if (as_json)
      fmt::print("{}\n", out.dump());
    else if (what == "peers")
      print_peers(out);
    else
      for (auto& [k, v] : out.items())
        fmt::print("{:<12} packets {:>10}  bytes {:>14}\n", k, v["packets"].get<uint64_t>(),
                   v["bytes"].get<uint64_t>());
  } catch (const std::exception& e) {
    fmt::print(stderr, "mlinkctl: {}\n", e.what());
    return 1;
  }
  return 0;
}
