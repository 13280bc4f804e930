#include "pinned_maps.h"

#include <bpf/bpf.h>
#include <fmt/core.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "datapath/bpf_datapath.h"
#include "datapath/datapath.h"
#include "linkset/buckets.h"

namespace mlinkctl {

using nlohmann::json;

int open_pin(const std::string& dir, const char* name) {
  std::string path = dir + "/" + name;
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0)
    throw std::runtime_error(
        fmt::format("open {}: {} (is mlinkd running for this node?)", path, std::strerror(errno)));
  return fd;
}

namespace {

int open_checked(const std::string& dir, const char* name, uint32_t key_size, uint32_t value_size,
                 const std::string& abi) {
  int fd = open_pin(dir, name);
  auto shape = mlink::datapath::map_shape(fd);
  if (!shape) throw std::runtime_error(fmt::format("{}/{}: {}", dir, name, shape.error().message));
  if (shape->key_size != key_size || shape->value_size != value_size)
    throw std::runtime_error(fmt::format(
        "{}/{}: key {} B, value {} B, but this mlinkctl (ABI {}) reads key {} B, value {} B: the "
        "datapath is {}; use the mlinkctl of the mlinkd that loaded it",
        dir, name, shape->key_size, shape->value_size, ML_ABI_VERSION, key_size, value_size, abi));
  return fd;
}

}  // namespace

Pins open_pins(const std::string& dir) {
  std::string abi = "of ABI 1 (no ml_abi)";
  std::string abi_path = dir + "/ml_abi";
  if (int fd = bpf_obj_get(abi_path.c_str()); fd >= 0) {
    auto v = mlink::datapath::abi_version(fd);
    abi = v ? fmt::format("of ABI {}", *v) : "of an unknown ABI";
    close(fd);
  }
  Pins p;
  p.peers = open_checked(dir, "ml_peers", sizeof(ml_addr), sizeof(ml_peer), abi);
  p.peer_stats = open_checked(dir, "ml_peer_stats", sizeof(__u32), sizeof(ml_peer_stats), abi);
  p.drops = open_checked(dir, "ml_drops", sizeof(__u32), sizeof(ml_counter), abi);
  return p;
}

namespace {

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

}  // namespace

json peers_json(const Pins& p) {
  json out = json::array();
  ml_addr key{}, next{};
  ml_addr* cur = nullptr;
  while (bpf_map_get_next_key(p.peers, cur, &next) == 0) {
    key = next;
    cur = &key;
    ml_peer v{};
    if (bpf_map_lookup_elem(p.peers, &key, &v) != 0) continue;
    auto share = mlink::linkset::share(v);
    auto st = mlink::datapath::peer_stats_sum(p.peer_stats, v.peer_id);
    json links = json::array();
    for (unsigned s = 0; s < v.nslots && s < ML_MAX_SLOTS; s++)
      links.push_back(slot_json(v.slots[s], share[s], st ? st->slots[s] : ml_counter{}));
    json e = {{"ml_address", mlink::datapath::from_key(key).str()},
              {"peer_id", v.peer_id},
              {"hash", v.hash_policy == ML_HASH_SOCKET ? "socket" : "l34"},
              {"spread", v.spread == ML_SPREAD_FLOWLET ? "flowlet" : "flow"},
              {"links", links}};
    if (v.spread == ML_SPREAD_FLOWLET) e["flowlet_gap_us"] = v.flowlet_gap_us;
    if (v.socket_queue_limit) e["socket_queue_limit"] = v.socket_queue_limit;
    out.push_back(std::move(e));
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

}  // namespace mlinkctl
